// GNU readline driven from the ncurses loop through its callback interface: keys read by curses
// are handed to readline byte by byte (rl_getc_function / rl_input_available_hook), readline never
// touches the terminal (rl_redisplay_function only marks the line dirty; the renderer draws
// rl_line_buffer), and history lives in a file across runs. One instance at a time.
#pragma once
#include <deque>
#include <string>

namespace fdl::ui {

class LineInput {
public:
    // Installs the callback handler and reads the history file ("" = no history file).
    void start(const std::string& history_file);
    void stop();  // removes the handler, writes the history
    ~LineInput() { stop(); }

    void feed_bytes(const std::string& bytes);  // typed text / control bytes (UTF-8)
    void feed_wchar(wchar_t c);
    void insert_newline();
    void left(), right(), home(), end(), del(), backspace(), history_prev(), history_next();
    void clear();  // forget the current line
    void set_line(const std::string& text);

    bool has_line() const { return !lines_.empty(); }
    std::string take_line();
    bool eof() const { return eof_; }  // Ctrl-D on an empty line

    std::string line() const;  // the buffer being edited
    int point() const;         // cursor, byte offset
    bool empty() const { return line().empty(); }

private:
    bool started_ = false;
    bool eof_ = false;
    std::deque<std::string> lines_;
    std::string history_file_;
    void pump();
    friend struct LineInputAccess;
};

// Adds a line to the in-memory history (and appends it to the history file) for plain mode too.
void history_add(const std::string& line, const std::string& history_file);

}  // namespace fdl::ui
