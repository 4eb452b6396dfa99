// The line-based chat for pipes and --plain: prompts from standard input (readline when it is a
// terminal), answers streamed to standard output, statistics in brackets.
#include "ui/plain_repl.h"

#include <readline/history.h>
#include <readline/readline.h>
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

#include "engine/io/clock.h"
#include "ui/line_input.h"
#include "ui/signals.h"

namespace fdl::ui {

namespace {

double now_s() { return now_seconds(); }

class Plain {
public:
    explicit Plain(ChatClient& client) : client_(client) {}
    int run();

private:
    ChatClient& client_;
    Settings settings_;
    AnswerView view_;
    size_t printed_ = 0;
    int lane_ = 0;
    bool tty_in_ = false;
    bool tty_out_ = false;
    CompareState cmp_;
    bool quit_ = false;

    void handle(const std::string& line);
    void on_event(ChatEvent&& e);
    void answer(const std::string& prompt);
    bool read_line(std::string& out);
};

void Plain::on_event(ChatEvent&& e) {
    switch (e.kind) {
        case ChatEvent::Kind::Decode:
            apply_event(view_, e.decode, client_.lane_text[e.lane]);
            if (view_.text.size() > printed_) {
                std::string out = view_.text.substr(printed_);
                if (tty_out_)  // control characters would move the cursor around: show them as '�'
                    for (size_t i = 0; i < out.size(); i++) {
                        const unsigned char ch = static_cast<unsigned char>(out[i]);
                        if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7F) out.replace(i, 1, "\xEF\xBF\xBD"), i += 2;
                    }
                std::fwrite(out.data(), 1, out.size(), stdout);
                printed_ = view_.text.size();
                std::fflush(stdout);
            }
            break;
        case ChatEvent::Kind::LaneStarted:
            client_.on_lane_started(e);
            view_ = AnswerView{};
            printed_ = 0;
            lane_ = e.lane;
            if (settings_.compare()) std::printf("[%s]\n", e.text.c_str());
            std::fflush(stdout);
            break;
        case ChatEvent::Kind::LaneFinished:
            if (!e.error.empty()) {
                if (printed_) std::printf("\n");
                std::fflush(stdout);
                std::fprintf(stderr, "error: %s\n", e.error.c_str());
                break;
            }
            {
                std::string line = answer_summary(view_.stats);
                if (view_.cancelled) line += " · cancelled";
                if (settings_.delay_ms > 0) line += " · slowed by /delay";
                std::printf("\n[%s]\n", line.c_str());
                std::fflush(stdout);
                if (e.lane == 1 || settings_.compare()) cmp_.record(e.lane, view_.stats, view_.cancelled, settings_);
            }
            if (e.left_out > 0) std::fprintf(stderr, "%s\n", left_out_text(e.left_out, client_.info.context).c_str());
            break;
        case ChatEvent::Kind::Info: std::fprintf(stderr, "%s\n", e.text.c_str()); break;
        case ChatEvent::Kind::Done:
            if (const std::string line = finish_compare(cmp_); !line.empty()) std::printf("[%s]\n", line.c_str());
            std::fflush(stdout);
            break;
    }
}

// One prompt: submitted to the service, its events printed as they come. A signal cancels the
// answer between forward passes (Ctrl-C only the answer; SIGTERM/SIGHUP then end the REPL).
void Plain::answer(const std::string& prompt) {
    ChatEventQueue q;
    uint64_t id = 0;
    try {
        id = client_.backend->submit(client_.request(prompt, settings_), q.sink());
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: %s\n", ex.what());
        return;
    }
    bool cancelled = false;
    for (;;) {
        ChatEvent e;
        if (q.wait_next(e, 0.05)) {
            const bool done = e.kind == ChatEvent::Kind::Done;
            on_event(std::move(e));
            if (done) break;
        }
        if (g_signal && !cancelled) {
            client_.backend->cancel(id);
            cancelled = true;
        }
    }
    if (g_signal == SIGINT) g_signal = 0;  // that Ctrl-C cancelled the answer
}

void Plain::handle(const std::string& line) {
    const Command c = parse_command(line);
    if (c.kind == CommandKind::None) {
        bool blank = true;
        for (char ch : c.text) blank = blank && (ch == ' ' || ch == '\n' || ch == '\t');
        if (blank) return;
        cmp_.new_prompt();
        answer(c.text);
        return;
    }
    bool error = false, handled = false;
    const std::string msg = run_shared_command(client_, settings_, c, false, error, handled);
    if (handled) {
        if (error) std::fprintf(stderr, "error: %s\n", msg.c_str());
        else std::printf("%s\n", msg.c_str());
        std::fflush(stdout);
        return;
    }
    switch (c.kind) {
        case CommandKind::Help:
            for (auto& l : help_lines()) std::printf("%s\n", l.c_str());
            std::printf("(plain mode: Ctrl-C cancels an answer; Ctrl-D or /quit leaves)\n");
            break;
        case CommandKind::Quit: quit_ = true; break;
        case CommandKind::Replay: std::fprintf(stderr, "error: /replay needs the full-screen TUI\n"); break;
        default: break;
    }
    std::fflush(stdout);
}

// Interactive input: readline's callback interface over select(), so that signals are seen.
namespace rl_plain {
std::deque<std::string> lines;
bool eof = false;
void on_line(char* l) {
    rl_callback_handler_remove();  // one line at a time: readline must not redraw the prompt now
    if (!l) {
        eof = true;
        return;
    }
    lines.emplace_back(l);
    std::free(l);
}
}  // namespace rl_plain

bool Plain::read_line(std::string& out) {
    if (!tty_in_) {
        // byte-wise read(2) so that SIGTERM/SIGINT interrupt a wait on an idle pipe
        out.clear();
        for (;;) {
            char c;
            const ssize_t n = ::read(0, &c, 1);
            if (n == 1) {
                if (c == '\n') return true;
                out.push_back(c);
                continue;
            }
            if (n < 0 && errno == EINTR) {
                if (g_signal) return false;
                continue;
            }
            return !out.empty();  // EOF (a last line without a newline still counts)
        }
    }
    double ctrl_c = -1;
    while (rl_plain::lines.empty() && !rl_plain::eof) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(0, &fds);
        const int r = ::select(1, &fds, nullptr, nullptr, nullptr);
        if (r < 0 && errno == EINTR) {
            if (g_signal == SIGINT) {
                g_signal = 0;
                const bool empty = rl_end == 0;
                rl_free_line_state();
                rl_callback_sigcleanup();
                rl_replace_line("", 0);
                rl_point = rl_end = 0;
                if (empty && ctrl_c >= 0 && now_s() - ctrl_c < 3) {
                    std::printf("\n");
                    return false;
                }
                std::printf(empty ? "^C (press Ctrl-C again to quit)\n" : "^C\n");
                if (empty) ctrl_c = now_s();
                rl_on_new_line();
                rl_redisplay();
                continue;
            }
            if (g_signal) return false;
            continue;
        }
        if (r > 0) rl_callback_read_char();
    }
    if (rl_plain::lines.empty()) return false;
    out = std::move(rl_plain::lines.front());
    rl_plain::lines.pop_front();
    return true;
}

int Plain::run() {
    settings_ = client_.settings;
    tty_in_ = ::isatty(0) && ::isatty(1);
    tty_out_ = ::isatty(1);
    if (tty_in_) {
        rl_catch_signals = 0;
        rl_catch_sigwinch = 1;
        rl_readline_name = "fastdllm";
        history_comment_char = '#';  // timestamps ("#<time>" lines) separate entries
        history_write_timestamps = 1;
        history_multiline_entries = 1;
        using_history();
        stifle_history(1000);
        if (!client_.history_file.empty()) read_history(client_.history_file.c_str());
        std::printf("fastdllm chat · %s · /help lists commands, /quit or Ctrl-D leaves\n", settings_text(settings_).c_str());
    }
    std::string pending;  // lines joined by a trailing backslash
    while (!quit_ && !g_signal) {
        if (tty_in_) rl_callback_handler_install(pending.empty() ? "> " : ". ", rl_plain::on_line);
        std::string line;
        const bool got = read_line(line);
        if (tty_in_) rl_callback_handler_remove();
        if (!got) break;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty() && line.back() == '\\') {
            line.pop_back();
            pending += line + "\n";
            continue;
        }
        line = pending + line;
        pending.clear();
        if (tty_in_) history_add(line, client_.history_file);
        handle(line);
    }
    if (!pending.empty() && !quit_ && !g_signal) handle(pending);
    if (tty_in_ && !client_.history_file.empty()) history_truncate_file(client_.history_file.c_str(), 1000);
    if (g_signal && g_signal != SIGINT) return 128 + int(g_signal);
    return 0;
}


}  // namespace

int run_plain(ChatClient& client) {
    Plain p(client);
    return p.run();
}

}  // namespace fdl::ui
