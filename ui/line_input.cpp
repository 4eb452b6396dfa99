#include "ui/line_input.h"

#include <readline/history.h>
#include <readline/readline.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ui/text.h"

namespace fdl::ui {

struct LineInputAccess {
    static void set_eof(LineInput& in) { in.eof_ = true; }
    static void push(LineInput& in, std::string s) { in.lines_.push_back(std::move(s)); }
    static const std::string& file(LineInput& in) { return in.history_file_; }
};

namespace {

std::deque<unsigned char> g_bytes;
LineInput* g_self = nullptr;
std::string g_prefill;
bool g_has_prefill = false;
FILE* g_null = nullptr;

int getc_cb(FILE*) {
    if (g_bytes.empty()) return EOF;
    const int c = g_bytes.front();
    g_bytes.pop_front();
    return c;
}
int avail_cb() { return g_bytes.empty() ? 0 : 1; }
void redisplay_cb() {}  // the renderer draws rl_line_buffer itself
void prep_cb(int) {}    // curses owns the terminal
void deprep_cb() {}

void line_cb(char* line) {
    if (!g_self) {
        std::free(line);
        return;
    }
    if (!line) {
        LineInputAccess::set_eof(*g_self);
        return;
    }
    std::string s(line);
    std::free(line);
    if (!s.empty() && s.back() == '\\') {  // a trailing backslash continues the prompt on a new line
        s.pop_back();
        g_prefill = s + "\n";
        g_has_prefill = true;
        return;
    }
    history_add(s, LineInputAccess::file(*g_self));
    LineInputAccess::push(*g_self, std::move(s));
}

}  // namespace

void history_add(const std::string& line, const std::string& history_file) {
    bool blank = true;
    for (char c : line) blank = blank && (c == ' ' || c == '\n' || c == '\t');
    if (blank) return;
    HIST_ENTRY* last = history_length > 0 ? history_get(history_base + history_length - 1) : nullptr;
    if (last && last->line && line == last->line) {
        using_history();
        return;
    }
    add_history(line.c_str());
    using_history();
    if (!history_file.empty()) {
        struct stat st;
        if (::stat(history_file.c_str(), &st) != 0) write_history(history_file.c_str());
        else append_history(1, history_file.c_str());
    }
}

void LineInput::start(const std::string& history_file) {
    if (started_) return;
    started_ = true;
    g_self = this;
    history_file_ = history_file;
    if (!g_null) g_null = std::fopen("/dev/null", "w");
    rl_readline_name = "fastdllm";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_getc_function = getc_cb;
    rl_input_available_hook = avail_cb;
    rl_redisplay_function = redisplay_cb;
    rl_prep_term_function = prep_cb;
    rl_deprep_term_function = deprep_cb;
    rl_outstream = g_null ? g_null : stdout;
    history_comment_char = '#';  // timestamps ("#<time>" lines) separate entries
    history_write_timestamps = 1;  // lets multi-line prompts come back as one entry
    history_multiline_entries = 1;
    using_history();
    stifle_history(1000);
    if (!history_file_.empty()) read_history(history_file_.c_str());
    rl_callback_handler_install("", line_cb);
    rl_variable_bind("bell-style", "none");
    rl_variable_bind("enable-bracketed-paste", "off");
    rl_variable_bind("horizontal-scroll-mode", "on");
    rl_bind_key('\t', rl_insert);  // no completion listings: they would write to the terminal
}

void LineInput::stop() {
    if (!started_) return;
    rl_callback_handler_remove();
    if (!history_file_.empty()) history_truncate_file(history_file_.c_str(), 1000);
    started_ = false;
    if (g_self == this) g_self = nullptr;
    g_bytes.clear();
    rl_outstream = stdout;
}

void LineInput::pump() {
    while (!g_bytes.empty()) {
        rl_callback_read_char();
        if (g_has_prefill) {
            g_has_prefill = false;
            rl_replace_line("", 0);
            rl_point = 0;
            rl_insert_text(g_prefill.c_str());
        }
    }
}

void LineInput::feed_bytes(const std::string& bytes) {
    if (!started_) return;
    for (unsigned char c : bytes) g_bytes.push_back(c);
    pump();
}

void LineInput::feed_wchar(wchar_t c) { feed_bytes(wide_to_utf8(std::wstring(1, c))); }

void LineInput::insert_newline() {
    if (started_) rl_insert_text("\n");
}

void LineInput::left() { if (started_) rl_backward_char(1, 0); }
void LineInput::right() { if (started_) rl_forward_char(1, 0); }
void LineInput::home() { if (started_) rl_beg_of_line(1, 0); }
void LineInput::end() { if (started_) rl_end_of_line(1, 0); }
void LineInput::del() { if (started_) rl_delete(1, 0); }
void LineInput::backspace() { if (started_) rl_rubout(1, 0); }
void LineInput::history_prev() { if (started_) rl_get_previous_history(1, 0); }
void LineInput::history_next() { if (started_) rl_get_next_history(1, 0); }

void LineInput::clear() {
    if (!started_) return;
    rl_replace_line("", 0);
    rl_point = rl_end = 0;
    using_history();
}

void LineInput::set_line(const std::string& text) {
    if (!started_) return;
    rl_replace_line(text.c_str(), 0);
    rl_point = rl_end;
}

std::string LineInput::take_line() {
    std::string s = std::move(lines_.front());
    lines_.pop_front();
    return s;
}

std::string LineInput::line() const { return started_ && rl_line_buffer ? std::string(rl_line_buffer, size_t(rl_end)) : ""; }
int LineInput::point() const { return started_ ? rl_point : 0; }

}  // namespace fdl::ui
