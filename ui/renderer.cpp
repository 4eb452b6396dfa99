#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include "ui/renderer.h"

#include <ncursesw/ncurses.h>

#include <langinfo.h>
#include <csignal>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "ui/commands.h"
#include "ui/text.h"

namespace fdl::ui {

namespace {

constexpr short kUser = 1, kAssistant = 2, kMeta = 3, kError = 4, kInfo = 5, kMasked = 6, kPromptCell = 7, kBorder = 8,
                kOk = 9, kLatest = 10, kHint = 11, kActiveMasked = 12, kTitle = 13, kStep0 = 20;

struct Span {
    std::wstring text;
    attr_t attr = A_NORMAL;
    short pair = 0;
};
using Line = std::vector<Span>;

// Draws spans on row y from column x, clipped to `width` columns. Returns the columns used.
int put_spans(WINDOW* w, int y, int x, const Line& spans, int width) {
    int used = 0;
    for (auto& s : spans) {
        if (used >= width) break;
        std::wstring t = fit_width(s.text, width - used);
        if (t.empty()) continue;
        wattr_set(w, s.attr, s.pair, nullptr);
        mvwaddnwstr(w, y, x + used, t.c_str(), int(t.size()));
        used += display_width(t);
    }
    wattr_set(w, A_NORMAL, 0, nullptr);
    return used;
}

void put(WINDOW* w, int y, int x, const std::wstring& s, int width, attr_t attr = A_NORMAL, short pair = 0) {
    put_spans(w, y, x, Line{Span{s, attr, pair}}, width);
}

bool utf8_locale() {
    static const bool u = [] {
        const char* cs = nl_langinfo(CODESET);
        return cs && (std::string(cs) == "UTF-8" || std::string(cs) == "utf8");
    }();
    return u;
}

// A box with Unicode line characters (ACS in a non-UTF-8 locale).
void draw_box(WINDOW* w, short pair) {
    int h = 0, wd = 0;
    getmaxyx(w, h, wd);
    if (h < 2 || wd < 2) return;
    wattr_set(w, A_NORMAL, pair, nullptr);
    if (!utf8_locale()) {
        box(w, 0, 0);
    } else {
        const std::wstring horiz(size_t(wd - 2), L'─');
        mvwaddwstr(w, 0, 0, L"┌");
        mvwaddwstr(w, 0, 1, horiz.c_str());
        mvwaddwstr(w, 0, wd - 1, L"┐");
        for (int y = 1; y < h - 1; y++) {
            mvwaddwstr(w, y, 0, L"│");
            mvwaddwstr(w, y, wd - 1, L"│");
        }
        mvwaddwstr(w, h - 1, 0, L"└");
        mvwaddwstr(w, h - 1, 1, horiz.c_str());
        // the bottom-right corner: writing the last cell of a window scrolls nothing in a subwindow
        // that does not reach the screen's corner; otherwise ncurses ignores the failed cursor move
        mvwaddwstr(w, h - 1, wd - 1, L"┘");
    }
    wattr_set(w, A_NORMAL, 0, nullptr);
}

struct Windows {
    WINDOW* transcript = nullptr;
    WINDOW* block = nullptr;
    WINDOW* status = nullptr;
    WINDOW* input = nullptr;
    WINDOW* help = nullptr;
    int rows = 0, cols = 0, t_h = 0, b_h = 0, s_h = 0, i_h = 0;
    bool help_on = false;
    void destroy() {
        for (WINDOW** p : {&transcript, &block, &status, &input, &help})
            if (*p) {
                delwin(*p);
                *p = nullptr;
            }
    }
};

Windows g_win;

}  // namespace

CellLayout layout_cells(int block_size, int sub_size, int avail) {
    CellLayout L;
    if (block_size <= 0 || avail <= 0) return L;
    constexpr int kMinCell = 7, kMaxCell = 14;
    const int group = sub_size > 0 && sub_size <= block_size && block_size % sub_size == 0 ? sub_size : 0;
    if (group > 0) {
        const int ngroups = block_size / group;
        for (int g = ngroups; g >= 1; g--) {
            if (ngroups % g) continue;
            const int n = g * group;
            if (n * kMinCell + (g - 1) <= avail) {
                L.group = group;
                L.per_row = n;
                L.cell_w = std::min(kMaxCell, (avail - (g - 1)) / n);
                break;
            }
        }
    }
    if (L.per_row == 0) {
        L.group = 0;
        L.per_row = std::max(1, std::min(block_size, avail / kMinCell));
        L.cell_w = std::max(2, std::min(kMaxCell, avail / L.per_row));
    }
    L.rows = (block_size + L.per_row - 1) / L.per_row;
    return L;
}

bool Renderer::start() {
    if (started_) return true;
    // newterm (not initscr, which exits on an unknown $TERM) so that the caller can fall back
    screen_ = newterm(nullptr, stdout, stdin);
    if (!screen_) return false;
    set_term(static_cast<SCREEN*>(screen_));
    started_ = true;
    raw();  // Ctrl-C arrives as a key (it cancels an answer instead of killing the app)
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    timeout(30);
    curs_set(1);
    init_colors();
    return true;
}

void Renderer::stop() {
    if (!started_) return;
    g_win.destroy();
    endwin();
    delscreen(static_cast<SCREEN*>(screen_));
    screen_ = nullptr;
    started_ = false;
}

void Renderer::resized() {
    g_win.destroy();  // rebuilt at the next draw with the new size
}

void Renderer::suspend() {
    if (!started_) return;
    endwin();
    // raw() turns off the terminal's own Ctrl-Z, so the key arrives here; stop as the shell expects,
    // with the default action whatever handler ncurses may have installed
    struct sigaction dfl {}, old {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTSTP, &dfl, &old);
    raise(SIGTSTP);  // returns after `fg`
    sigaction(SIGTSTP, &old, nullptr);
    clearok(curscr, TRUE);
    resized();  // the terminal may have changed size meanwhile
}

void Renderer::init_colors() {
    const char* nc = std::getenv("NO_COLOR");
    if ((nc && *nc) || !has_colors()) {
        colors_ = ColorMode::None;
        palette_ = 0;
        return;
    }
    start_color();
    use_default_colors();
    if (COLORS >= 256 && COLOR_PAIRS >= 64) {
        colors_ = ColorMode::Full256;
        init_pair(kUser, 75, -1);
        init_pair(kAssistant, 114, -1);
        init_pair(kMeta, 244, -1);
        init_pair(kError, 203, -1);
        init_pair(kInfo, 180, -1);
        init_pair(kMasked, 240, -1);
        init_pair(kPromptCell, 246, -1);
        init_pair(kBorder, 242, -1);
        init_pair(kOk, 150, -1);
        init_pair(kLatest, 16, 220);
        init_pair(kHint, 242, -1);
        init_pair(kActiveMasked, 248, -1);
        init_pair(kTitle, 223, -1);
        static const short bg[] = {24, 29, 94, 97, 125, 31, 64, 130, 61, 136};
        palette_ = int(sizeof bg / sizeof bg[0]);
        for (int i = 0; i < palette_; i++) init_pair(short(kStep0 + i), 231, bg[i]);
    } else {
        colors_ = ColorMode::Basic16;
        init_pair(kUser, COLOR_CYAN, -1);
        init_pair(kAssistant, COLOR_GREEN, -1);
        init_pair(kMeta, COLOR_WHITE, -1);
        init_pair(kError, COLOR_RED, -1);
        init_pair(kInfo, COLOR_YELLOW, -1);
        init_pair(kMasked, COLOR_WHITE, -1);
        init_pair(kPromptCell, COLOR_WHITE, -1);
        init_pair(kBorder, COLOR_BLUE, -1);
        init_pair(kOk, COLOR_GREEN, -1);
        init_pair(kLatest, COLOR_BLACK, COLOR_YELLOW);
        init_pair(kHint, COLOR_WHITE, -1);
        init_pair(kActiveMasked, COLOR_WHITE, -1);
        init_pair(kTitle, COLOR_YELLOW, -1);
        static const short fg[] = {COLOR_CYAN, COLOR_GREEN, COLOR_MAGENTA, COLOR_BLUE, COLOR_RED, COLOR_YELLOW};
        palette_ = int(sizeof fg / sizeof fg[0]);
        for (int i = 0; i < palette_; i++) init_pair(short(kStep0 + i), fg[i], -1);
    }
}

int Renderer::pair_for_step(int slot) const { return slot < 0 || palette_ == 0 ? 0 : kStep0 + slot; }

namespace {

// ---- transcript -------------------------------------------------------------------------------

std::vector<Line> transcript_lines(const ViewModel& vm, int width, bool color, double now) {
    std::vector<Line> out;
    const int tw = std::max(1, width - 2);
    for (size_t i = 0; i < vm.transcript.size(); i++) {
        const Entry& e = vm.transcript[i];
        if (!out.empty()) out.push_back({});
        short pair = kInfo;
        std::wstring bar = L"│ ";
        switch (e.kind) {
            case Entry::Kind::User: pair = kUser; break;
            case Entry::Kind::Assistant: pair = kAssistant; break;
            case Entry::Kind::Info: pair = kInfo; bar = L"• "; break;
            case Entry::Kind::Error: pair = kError; bar = L"✗ "; break;
        }
        const short p = color ? pair : 0;
        if (e.kind == Entry::Kind::User || e.kind == Entry::Kind::Assistant) {
            Line head{Span{utf8_to_wide(e.label), A_BOLD, p}};
            if (e.live) head.push_back(Span{L"  decoding…", A_DIM, color ? kMeta : short(0)});
            out.push_back(head);
        }
        std::wstring text = utf8_to_wide(e.kind == Entry::Kind::Info && !e.label.empty() ? e.label + ": " + e.text : e.text);
        std::vector<std::wstring> lines = wrap_text(text, tw);
        if (e.live) {
            // a blinking-free cursor at the end of the streamed text
            if (display_width(lines.back()) + 1 > tw) lines.push_back(L"");
            lines.back() += (int(now * 2) % 2) ? L"▌" : L"▍";
        }
        const bool turn = e.kind == Entry::Kind::User || e.kind == Entry::Kind::Assistant;
        for (size_t k = 0; k < lines.size(); k++) {
            const std::wstring& l = lines[k];
            Line line{Span{turn || k == 0 ? bar : std::wstring(L"  "), turn ? A_NORMAL : A_BOLD, p}};
            attr_t a = A_NORMAL;
            short tp = 0;
            if (e.kind == Entry::Kind::Error) tp = p;
            if (e.kind == Entry::Kind::Info) tp = p;
            line.push_back(Span{l, a, tp});
            out.push_back(std::move(line));
        }
        if (!e.meta.empty()) {
            for (auto& l : wrap_text(utf8_to_wide(e.meta), tw))
                out.push_back(Line{Span{L"  ", A_NORMAL, 0}, Span{l, A_DIM, color ? kMeta : short(0)}});
        }
    }
    return out;
}

// ---- block view -------------------------------------------------------------------------------

}  // namespace

int Renderer::draw(const ViewModel& vm, const InputView& in, double now) {
    if (!started_) return 0;
    int rows = 0, cols = 0;
    getmaxyx(stdscr, rows, cols);
    const bool color = colors_ != ColorMode::None;

    // ---- layout ----
    const AnswerView& shown = vm.shown();
    int bsize = shown.started && shown.block.size > 0 ? shown.block.size : vm.settings.gen.block_size;
    int bsub = shown.started ? shown.block.sub_size : vm.settings.gen.sub_block_size;
    if (shown.started && shown.ar) bsub = 8;
    if (!shown.started && vm.settings.gen.mode == DecodeMode::AR && !vm.settings.compare()) bsize = kArWindow, bsub = 8;
    CellLayout cl = layout_cells(bsize, bsub, std::max(1, cols - 2));
    const int max_cell_rows = std::max(1, (rows - 10) / 2);
    const int cell_rows = std::min(cl.rows, max_cell_rows);

    // input: the prompt's lines, wrapped
    const std::wstring prompt_w = utf8_to_wide(in.prompt);
    const int pw = display_width(prompt_w);
    const int iw = std::max(1, cols - pw);
    std::vector<std::wstring> in_lines;
    int cur_row = 0, cur_col = 0;
    {
        const std::string before = in.line.substr(0, size_t(std::clamp(in.point, 0, int(in.line.size()))));
        // lay out the text, tracking where the cursor lands
        std::wstring all = utf8_to_wide(in.line);
        const size_t cursor_chars = utf8_to_wide(before).size();
        std::wstring cur;
        int cw = 0;
        size_t idx = 0;
        bool placed = false;
        auto place = [&] {
            if (!placed && idx == cursor_chars) {
                cur_row = int(in_lines.size());
                cur_col = cw;
                placed = true;
            }
        };
        for (; idx < all.size(); idx++) {
            place();
            const wchar_t c = all[idx];
            if (c == L'\n') {
                in_lines.push_back(cur);
                cur.clear();
                cw = 0;
                continue;
            }
            int w = char_width(c);
            if (c == L'\t') w = 1;
            if (cw + w > iw - 1) {
                in_lines.push_back(cur);
                cur.clear();
                cw = 0;
                if (!placed && idx == cursor_chars) {
                    cur_row = int(in_lines.size());
                    cur_col = 0;
                    placed = true;
                }
            }
            cur.push_back(c == L'\t' ? L' ' : c);
            cw += w;
        }
        place();
        in_lines.push_back(cur);
    }
    const int i_h = std::clamp(int(in_lines.size()), 1, std::max(1, std::min(6, rows / 4)));
    const int s_h = rows >= 16 ? 3 : 2;
    int b_h = cell_rows + 2;
    int t_h = rows - i_h - s_h - b_h;
    if (t_h < 3) {  // a very small terminal: give the block view less
        b_h = std::max(0, b_h - (3 - t_h));
        t_h = rows - i_h - s_h - b_h;
    }
    t_h = std::max(0, t_h);

    if (g_win.rows != rows || g_win.cols != cols || g_win.t_h != t_h || g_win.b_h != b_h || g_win.i_h != i_h ||
        !g_win.transcript) {
        g_win.destroy();
        g_win.rows = rows;
        g_win.cols = cols;
        g_win.t_h = t_h;
        g_win.b_h = b_h;
        g_win.s_h = s_h;
        g_win.i_h = i_h;
        g_win.transcript = newwin(std::max(1, t_h), cols, 0, 0);
        g_win.block = newwin(std::max(1, b_h), cols, t_h, 0);
        g_win.status = newwin(s_h, cols, t_h + b_h, 0);
        g_win.input = newwin(i_h, cols, t_h + b_h + s_h, 0);
        for (WINDOW* w : {g_win.transcript, g_win.block, g_win.status}) leaveok(w, TRUE);
        werase(stdscr);
        wnoutrefresh(stdscr);
    }

    // ---- transcript ----
    int max_scroll = 0;
    {
        WINDOW* w = g_win.transcript;
        werase(w);
        if (t_h > 0) {
            std::vector<Line> lines = transcript_lines(vm, cols, color, now);
            if (vm.transcript.empty()) {
                lines.push_back(Line{Span{L"fastdllm — block-diffusion chat. Type a prompt and press Enter; F1 or /help lists keys "
                                          L"and commands.",
                                          A_DIM, 0}});
            }
            const int total = int(lines.size());
            max_scroll = std::max(0, total - t_h);
            const int scroll = std::clamp(vm.scroll, 0, max_scroll);
            const int first = std::max(0, total - t_h - scroll);
            for (int y = 0; y < t_h && first + y < total; y++) put_spans(w, y, 0, lines[size_t(first + y)], cols);
            if (scroll > 0) {
                std::wstring m = L" ↓ " + std::to_wstring(scroll) + L" more lines below · End: back to the bottom ";
                put(w, t_h - 1, std::max(0, cols - display_width(m)), m, cols, A_REVERSE, 0);
            }
        }
        wnoutrefresh(w);
    }

    // ---- block view ----
    if (b_h > 0) {
        WINDOW* w = g_win.block;
        werase(w);
        if (b_h >= 2) draw_box(w, color ? kBorder : 0);
        std::string title;
        if (vm.replay.active)
            title = "replay " + std::to_string(vm.replay.pos + 1) + "/" + std::to_string(vm.replay.events.size()) +
                    (vm.replay.playing ? " ▶ " + fmt(vm.replay.speed, 0) + "/s" : " ⏸") + " · ";
        if (shown.started) title += block_title(shown);
        else title += "block view · waiting for a prompt";
        put(w, 0, 2, L" " + utf8_to_wide(title) + L" ", cols - 4, A_BOLD, color ? kTitle : 0);
        const std::wstring st = L" " + utf8_to_wide(settings_text(vm.settings)) + L" ";
        if (b_h >= 2) put(w, b_h - 1, std::max(2, cols - 2 - display_width(st)), st, cols - 4, A_NORMAL, color ? kMeta : 0);

        // the cells
        const BlockView& b = shown.block;
        std::vector<Cell> cells;
        if (shown.started) cells = b.cells;
        else {
            Cell masked;
            masked.kind = CellKind::Masked;
            cells.assign(size_t(bsize), masked);
        }
        const int active_sub = shown.started ? b.active_sub : -1;
        // with more rows than fit, show the rows around the active sub-block
        int first_row = 0;
        if (cl.rows > cell_rows && cl.per_row > 0) {
            int focus = 0;
            for (size_t i = 0; i < cells.size(); i++)
                if (cells[i].latest || (active_sub >= 0 && b.sub_size > 0 && int(i) / b.sub_size == active_sub)) {
                    focus = int(i) / cl.per_row;
                    break;
                }
            first_row = std::clamp(focus - cell_rows / 2, 0, cl.rows - cell_rows);
        }
        const int inner = b_h >= 2 ? b_h - 2 : b_h;
        for (int r = 0; r < std::min(cell_rows, inner); r++) {
            const int y = (b_h >= 2 ? 1 : 0) + r;
            int x = 1;
            for (int k = 0; k < cl.per_row; k++) {
                const int i = (first_row + r) * cl.per_row + k;
                if (i >= int(cells.size())) break;
                if (k > 0 && cl.group > 0 && k % cl.group == 0) {
                    put(w, y, x, L"│", 1, A_NORMAL, color ? kBorder : 0);
                    x++;
                }
                const Cell& c = cells[size_t(i)];
                const int cw = cl.cell_w - 1;
                const bool in_active = active_sub >= 0 && b.sub_size > 0 && i / b.sub_size == active_sub;
                std::wstring text;
                attr_t a = A_NORMAL;
                short p = 0;
                switch (c.kind) {
                    case CellKind::Empty:
                        text = fit_width(L"·", cw, false, true);
                        a = A_DIM;
                        p = color ? kMasked : 0;
                        break;
                    case CellKind::Masked:
                        text = std::wstring(size_t(std::max(0, cw)), in_active ? L'▒' : L'░');
                        p = color ? (in_active ? kActiveMasked : kMasked) : 0;
                        a = in_active ? A_NORMAL : A_DIM;
                        break;
                    case CellKind::Prompt:
                        text = fit_width(c.text, cw, true, true);
                        a = A_DIM;
                        p = color ? kPromptCell : 0;
                        break;
                    case CellKind::Decoded:
                        text = fit_width(c.text.empty() ? L"∅" : c.text, cw, true, true);
                        if (c.latest) {
                            a = A_BOLD | (color ? A_NORMAL : A_REVERSE);
                            p = color ? kLatest : 0;
                        } else {
                            p = short(pair_for_step(step_colour(c.step, palette_)));
                            if (!color) a = A_NORMAL;
                            else if (colors_ == ColorMode::Basic16) a = A_BOLD;
                        }
                        break;
                }
                put(w, y, x, text, cw, a, p);
                x += cl.cell_w;
            }
        }
        wnoutrefresh(w);
    }

    // ---- status bar: speed, caches, messages ----
    {
        WINDOW* w = g_win.status;
        werase(w);
        Line l1, l2;
        if (vm.busy) {
            static const wchar_t* spin[] = {L"⠋", L"⠙", L"⠹", L"⠸", L"⠼", L"⠴", L"⠦", L"⠧", L"⠇", L"⠏"};
            l1.push_back(Span{std::wstring(spin[int(now * 10) % 10]) + L" ", A_BOLD, color ? kOk : short(0)});
        }
        if (shown.started) {
            double elapsed;
            if (vm.replay.active) elapsed = shown.stats.prefill_seconds + shown.stats.decode_seconds;
            else if (vm.live_ended > 0) elapsed = vm.live_ended - vm.live_started;
            else elapsed = now - vm.live_started;
            l1.push_back(Span{utf8_to_wide(speed_text(shown.stats, std::max(0.0, elapsed))), A_BOLD, 0});
            l2.push_back(Span{utf8_to_wide(cache_text(shown.stats, shown.ar)), A_NORMAL, 0});
        } else {
            l1.push_back(Span{L"ready", A_BOLD, 0});
            l2.push_back(Span{L"no answer yet", A_DIM, 0});
        }
        put_spans(w, 0, 0, l1, cols);
        if (s_h >= 3) put_spans(w, 1, 0, l2, cols);
        Line l3;
        const bool fresh = !vm.status.empty() && (vm.status_error || now - vm.status_time < 8);
        if (fresh) {
            l3.push_back(Span{utf8_to_wide(vm.status), vm.status_error ? A_BOLD : A_NORMAL,
                              color ? (vm.status_error ? kError : kOk) : short(0)});
        } else if (vm.busy) {
            l3.push_back(Span{L"Esc/Ctrl-C cancel · PgUp/PgDn scroll · F1 help", A_DIM, color ? kHint : short(0)});
        } else {
            l3.push_back(Span{L"Enter send · Alt-Enter newline · ←/→ replay · PgUp/PgDn scroll · F1 help · /quit",
                              A_DIM, color ? kHint : short(0)});
        }
        put_spans(w, s_h - 1, 0, l3, cols);
        wnoutrefresh(w);
    }

    // ---- input (before the help overlay, so that stays on top) ----
    if (!vm.show_help) curs_set(1);
    {
        WINDOW* w = g_win.input;
        werase(w);
        const int first = std::clamp(cur_row - i_h + 1, 0, std::max(0, int(in_lines.size()) - i_h));
        for (int y = 0; y < i_h && first + y < int(in_lines.size()); y++) {
            const std::wstring pre = y + first == 0 ? prompt_w : std::wstring(size_t(pw), L' ');
            put(w, y, 0, pre, cols, A_BOLD, color ? kUser : 0);
            put(w, y, pw, in_lines[size_t(first + y)], iw);
        }
        if (in.line.empty() && !in.hint.empty()) put(w, 0, pw, utf8_to_wide(in.hint), iw, A_DIM, color ? kHint : 0);
        wmove(w, std::clamp(cur_row - first, 0, i_h - 1), std::min(cols - 1, pw + cur_col));
        wnoutrefresh(w);
    }
    // ---- help overlay ----
    if (vm.show_help) {
        const auto lines = help_lines();
        int hw = 0;
        for (auto& l : lines) hw = std::max(hw, display_width(utf8_to_wide(l)));
        hw = std::min(cols, hw + 4);
        const int hh = std::min(rows, int(lines.size()) + 2);
        if (g_win.help) delwin(g_win.help);
        g_win.help = newwin(hh, hw, std::max(0, (rows - hh) / 2), std::max(0, (cols - hw) / 2));
        werase(g_win.help);
        draw_box(g_win.help, color ? kBorder : 0);
        put(g_win.help, 0, 2, L" fastdllm help · any key closes ", hw - 4, A_BOLD, color ? kTitle : 0);
        for (int i = 0; i < hh - 2 && i < int(lines.size()); i++) {
            const bool head = !lines[size_t(i)].empty() && lines[size_t(i)][0] != ' ';
            put(g_win.help, i + 1, 2, utf8_to_wide(lines[size_t(i)]), hw - 4, head ? A_BOLD : A_NORMAL, 0);
        }
        wnoutrefresh(g_win.help);
        curs_set(0);
    } else if (g_win.help) {
        delwin(g_win.help);
        g_win.help = nullptr;
        touchwin(g_win.transcript);
        touchwin(g_win.block);
        touchwin(g_win.status);
        wnoutrefresh(g_win.transcript);
        wnoutrefresh(g_win.block);
        wnoutrefresh(g_win.status);
    }

    doupdate();
    return max_scroll;
}

}  // namespace fdl::ui
