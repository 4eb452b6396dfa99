#include "ui/text.h"

#include <utf8proc.h>
#include <wchar.h>

namespace fdl::ui {

std::wstring utf8_to_wide(std::string_view s) {
    std::wstring out;
    out.reserve(s.size());
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out.push_back(wchar_t(c));
            i++;
            continue;
        }
        int len = 0;
        uint32_t cp = 0;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        if (len == 0 || i + size_t(len) > n) {
            out.push_back(L'\uFFFD');
            i++;
            // a truncated sequence: skip its continuation bytes too
            while (len && i < n && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) i++;
            continue;
        }
        bool ok = true;
        for (int k = 1; k < len; k++) {
            const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
            if ((d & 0xC0) != 0x80) { ok = false; break; }
            cp = (cp << 6) | (d & 0x3F);
        }
        if (ok) {
            if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                ok = false;
        }
        if (!ok) {
            out.push_back(L'\uFFFD');
            i++;
            while (i < n && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) i++;
            continue;
        }
        out.push_back(wchar_t(cp));
        i += size_t(len);
    }
    return out;
}

std::string wide_to_utf8(std::wstring_view s) {
    std::string out;
    out.reserve(s.size());
    for (wchar_t wc : s) {
        uint32_t c = uint32_t(wc);
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
        if (c < 0x80) out.push_back(char(c));
        else if (c < 0x800) {
            out.push_back(char(0xC0 | (c >> 6)));
            out.push_back(char(0x80 | (c & 0x3F)));
        } else if (c < 0x10000) {
            out.push_back(char(0xE0 | (c >> 12)));
            out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(char(0x80 | (c & 0x3F)));
        } else {
            out.push_back(char(0xF0 | (c >> 18)));
            out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
            out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
            out.push_back(char(0x80 | (c & 0x3F)));
        }
    }
    return out;
}

int char_width(wchar_t c) {
    if (c < 0x20 || (c >= 0x7F && c < 0xA0)) return 0;
    int w = ::wcwidth(c);
    if (w >= 0) return w;
    w = utf8proc_charwidth(utf8proc_int32_t(c));
    const auto cat = utf8proc_category(utf8proc_int32_t(c));
    if (w == 0 && cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_ME && cat != UTF8PROC_CATEGORY_CF) w = 1;
    return w < 0 ? 1 : w;
}

int display_width(std::wstring_view s) {
    int w = 0;
    for (wchar_t c : s) w += char_width(c);
    return w;
}

std::wstring fit_width(std::wstring_view s, int width, bool ellipsis, bool pad) {
    std::wstring out;
    if (width <= 0) return out;
    const int total = display_width(s);
    if (total <= width) {
        out.assign(s);
        if (pad) out.append(size_t(width - total), L' ');
        return out;
    }
    const int room = ellipsis ? width - 1 : width;
    int w = 0;
    for (wchar_t c : s) {
        const int cw = char_width(c);
        if (w + cw > room) break;
        out.push_back(c);
        w += cw;
    }
    if (ellipsis) {
        out.push_back(L'…');
        w++;
    }
    if (pad && w < width) out.append(size_t(width - w), L' ');
    return out;
}

std::vector<std::wstring> wrap_text(std::wstring_view s, int width) {
    std::vector<std::wstring> lines;
    if (width < 1) width = 1;
    std::wstring line;
    int line_w = 0;
    size_t last_space = std::wstring::npos;  // index in `line` just after the last space
    auto push_line = [&] {
        lines.push_back(line);
        line.clear();
        line_w = 0;
        last_space = std::wstring::npos;
    };
    for (wchar_t c : s) {
        if (c == L'\n') {
            push_line();
            continue;
        }
        if (c == L'\r') continue;
        if (c == L'\t') c = L' ';
        const int cw = char_width(c);
        if (cw == 0 && (c < 0x20 || (c >= 0x7F && c < 0xA0))) continue;
        if (line_w + cw > width) {
            if (c == L' ') {  // a space at the break: drop it
                push_line();
                continue;
            }
            if (last_space != std::wstring::npos && last_space > 0) {
                std::wstring rest = line.substr(last_space);
                line.resize(last_space);
                while (!line.empty() && line.back() == L' ') line.pop_back();
                push_line();
                line = rest;
                line_w = display_width(line);
                if (line_w + cw > width) push_line();
            } else {
                push_line();
            }
        }
        line.push_back(c);
        line_w += cw;
        if (c == L' ') last_space = line.size();
    }
    lines.push_back(line);
    return lines;
}

std::wstring token_cell_text(std::string_view bytes) {
    std::wstring out;
    out.reserve(bytes.size());
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(bytes.data());
    const utf8proc_ssize_t n = utf8proc_ssize_t(bytes.size());
    for (utf8proc_ssize_t i = 0; i < n;) {
        utf8proc_int32_t c = 0;
        const utf8proc_ssize_t len = utf8proc_iterate(p + i, n - i, &c);
        if (len <= 0) {  // a byte of a character split across tokens: named, as tokenizers print it
            static const wchar_t* hex = L"0123456789ABCDEF";
            out += L"<0x";
            out.push_back(hex[p[i] >> 4]);
            out.push_back(hex[p[i] & 15]);
            out.push_back(L'>');
            i++;
            continue;
        }
        i += len;
        if (c == ' ') out.push_back(L'·');
        else if (c == '\n') out.push_back(L'⏎');
        else if (c == '\t') out.push_back(L'⇥');
        else if (c == '\r') continue;
        else if (c < 0x20 || (c >= 0x7F && c < 0xA0)) out.push_back(L'¿');
        else out.push_back(wchar_t(c));
    }
    return out;
}

}  // namespace fdl::ui
