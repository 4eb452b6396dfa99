#include "engine/tokenizer/utf8.h"

#include <utf8proc.h>

namespace fdl::tok {

namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Looks at the sequence that starts at s[i] (i < n). Returns its length when it is one valid
// UTF-8 character. Otherwise returns 0 and sets `sub` to the length of its maximal invalid
// subpart (the lead byte plus the continuation bytes that were still acceptable, at least 1)
// and `truncated` when the input ended while the sequence was still acceptable.
size_t utf8_char(const unsigned char* s, size_t n, size_t i, size_t& sub, bool& truncated) {
    const unsigned char b = s[i];
    truncated = false;
    if (b < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        sub = 1;
        return 0;
    }
    size_t k = 1;
    for (; k < len; ++k) {
        if (i + k >= n) {
            truncated = true;
            break;
        }
        const unsigned char c = s[i + k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
    }
    if (k == len) return len;
    sub = k;
    return 0;
}

}  // namespace

size_t utf8_lossy_append(std::string_view in, std::string& out, bool final) {
    const auto* s = reinterpret_cast<const unsigned char*>(in.data());
    const size_t n = in.size();
    size_t i = 0, run = 0;  // [run, i) is valid text not yet copied
    while (i < n) {
        size_t sub;
        bool truncated;
        size_t len = utf8_char(s, n, i, sub, truncated);
        if (len) {
            i += len;
            continue;
        }
        out.append(in.data() + run, i - run);
        if (truncated && !final) return i;  // wait for the rest of this character
        out += kReplacement;
        i += sub;
        run = i;
    }
    out.append(in.data() + run, i - run);
    return i;
}

bool is_valid_utf8(std::string_view in) {
    const auto* s = reinterpret_cast<const unsigned char*>(in.data());
    size_t i = 0, sub;
    bool truncated;
    while (i < in.size()) {
        size_t len = utf8_char(s, in.size(), i, sub, truncated);
        if (!len) return false;
        i += len;
    }
    return true;
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 16);
    utf8_lossy_append(s, out, true);
    return out;
}

int32_t next_cp(std::string_view s, size_t& i) {
    utf8proc_int32_t cp = -1;
    auto r = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              utf8proc_ssize_t(s.size() - i), &cp);
    if (r <= 0) {
        ++i;
        return -1;
    }
    i += size_t(r);
    return cp;
}

int32_t prev_cp(std::string_view s, size_t end, size_t* start_out) {
    if (end == 0) return -1;
    size_t st = end - 1;
    while (st > 0 && (static_cast<unsigned char>(s[st]) & 0xC0) == 0x80 && end - st < 4) --st;
    size_t i = st;
    int32_t cp = next_cp(s, i);
    if (start_out) *start_out = st;
    return cp;
}

void append_cp(std::string& out, int32_t cp) {
    utf8proc_uint8_t buf[4];
    auto n = utf8proc_encode_char(cp, buf);
    out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

bool is_rust_whitespace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

bool is_word_char(int32_t c) {
    if (c < 0) return false;
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_PC:
            return true;
        default:
            return false;
    }
}

}  // namespace fdl::tok
