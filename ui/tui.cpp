// The full-screen chat: keys and the input line on the main thread, answers from the chat
// service's worker through an event queue drained every 30 ms into the view model, drawn by the
// renderer. Nothing here blocks on the model.
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include "ui/tui.h"

#include <ncursesw/ncurses.h>

#include <algorithm>
#include <cstdlib>
#include <deque>

#include "engine/io/clock.h"
#include "ui/line_input.h"
#include "ui/renderer.h"
#include "ui/signals.h"
#include "ui/text.h"

namespace fdl::ui {

namespace {

double now_s() { return now_seconds(); }

}  // namespace

class Tui {
public:
    explicit Tui(ChatClient& client) : client_(client) {}
    int run();

private:
    ChatClient& client_;
    ChatEventQueue events_;
    uint64_t job_ = 0;  // the request being answered
    ViewModel vm_;
    Renderer r_;
    LineInput in_;
    int page_ = 10;

    void submit(const std::string& line);
    void start_job(const std::string& prompt);
    void handle_key(int rc, wint_t ch);
    bool drain();
    void cancel_answer();
    const TokenText& replay_tt() const { return client_.lane_text[replay_lane_]; }
    int replay_lane_ = 0;
};

void Tui::cancel_answer() {
    if (!vm_.busy) return;
    client_.backend->cancel(job_);
    set_status(vm_, "cancelling…", false, now_s());
}

void Tui::start_job(const std::string& prompt) {
    events_.clear();
    try {
        job_ = client_.backend->submit(client_.request(prompt, vm_.settings), events_.sink());
    } catch (const std::exception& e) {
        set_status(vm_, e.what(), true, now_s());
        return;
    }
    begin_answer(vm_, prompt, now_s());
}

void Tui::submit(const std::string& line) {
    const double now = now_s();
    const Command c = parse_command(line);
    if (c.kind == CommandKind::None) {
        bool blank = true;
        for (char ch : c.text) blank = blank && (ch == ' ' || ch == '\n' || ch == '\t');
        if (blank) return;
        if (vm_.busy) {
            set_status(vm_, "still answering: Esc cancels; your prompt is back in the input line", true, now);
            in_.set_line(line);
            return;
        }
        vm_.status.clear();
        start_job(c.text);
        return;
    }
    bool error = false, handled = false;
    const std::string msg = run_shared_command(client_, vm_.settings, c, vm_.busy, error, handled);
    if (handled) {
        set_status(vm_, msg, error, now);
        if (!error && (c.kind == CommandKind::Clear || c.kind == CommandKind::Load)) {
            fill_transcript(vm_, client_);
            vm_.live = AnswerView{};
            vm_.replay = Replay{};
        }
        if (!error && c.kind == CommandKind::System) add_entry(vm_, Entry::Kind::Info, "system", c.arg.empty() ? "(none)" : c.arg);
        return;
    }
    switch (c.kind) {
        case CommandKind::Help: vm_.show_help = true; break;
        case CommandKind::Quit: vm_.quit = true; break;
        case CommandKind::Replay: {
            if (vm_.replay.events.empty()) {
                set_status(vm_, "nothing to replay yet: send a prompt first", true, now);
                break;
            }
            if (vm_.busy) {
                set_status(vm_, "replay is available when the answer is finished", true, now);
                break;
            }
            if (c.arg == "off" || c.arg == "stop") {
                replay_exit(vm_.replay);
                set_status(vm_, "replay off", false, now);
                break;
            }
            double speed = vm_.replay.speed;
            if (!c.arg.empty()) {
                char* end = nullptr;
                speed = std::strtod(c.arg.c_str(), &end);
                if (!end || *end || !(speed > 0 && speed <= 1000)) {
                    set_status(vm_, "/replay needs a speed in events per second (0, 1000], or off", true, now);
                    break;
                }
            }
            replay_play(vm_.replay, speed, now, replay_tt());
            set_status(vm_, "replaying " + std::to_string(vm_.replay.events.size()) + " events at " + fmt(speed, 1) +
                                "/s (←/→ step, Esc leaves)",
                       false, now);
            break;
        }
        default: break;
    }
}

bool Tui::drain() {
    std::deque<ChatEvent> events = events_.take_all();
    if (events.empty()) return false;
    const double now = now_s();
    for (auto& e : events) {
        switch (e.kind) {
            case ChatEvent::Kind::Decode:
                if (e.decode.type == DecodeEvent::Type::Started) replay_lane_ = e.lane;
                on_decode_event(vm_, e.decode, client_.lane_text[e.lane], now);
                break;
            case ChatEvent::Kind::LaneStarted:
                client_.on_lane_started(e);
                begin_lane(vm_, e.lane, e.text, now);
                if (e.lane == 1) vm_.settings.ar_model_name = e.text;
                break;
            case ChatEvent::Kind::LaneFinished:
                if (vm_.live_entry < 0 && !e.error.empty()) {
                    add_entry(vm_, Entry::Kind::Error, "", e.error);
                    set_status(vm_, e.error, true, now);
                } else {
                    end_answer(vm_, e.error.empty() ? &e.text : nullptr, e.error, now);
                }
                if (e.error.empty() && e.left_out > 0)
                    set_status(vm_, left_out_text(e.left_out, client_.info.context), false, now);
                break;
            case ChatEvent::Kind::Info:
                set_status(vm_, e.text, false, now);
                break;
            case ChatEvent::Kind::Done:
                end_job(vm_, now);
                if (vm_.live.cancelled) set_status(vm_, "answer cancelled", false, now);
                break;
        }
    }
    return true;
}

void Tui::handle_key(int rc, wint_t ch) {
    const double now = now_s();
    if (rc == KEY_CODE_YES) {
        if (ch == KEY_RESIZE) {
            r_.resized();
            return;
        }
        if (vm_.show_help && ch != KEY_MOUSE) {
            vm_.show_help = false;
            return;
        }
        const bool empty = in_.empty();
        switch (ch) {
            case KEY_F(1): vm_.show_help = true; break;
            case KEY_PPAGE: scroll_transcript(vm_, page_); break;
            case KEY_NPAGE: scroll_transcript(vm_, -page_); break;
            case KEY_LEFT:
            case KEY_RIGHT:
                if (empty && !vm_.busy && !vm_.replay.events.empty()) {
                    replay_step(vm_.replay, ch == KEY_LEFT ? -1 : 1, replay_tt());
                } else if (ch == KEY_LEFT) {
                    in_.left();
                } else {
                    in_.right();
                }
                break;
            case KEY_HOME:
                if (empty && vm_.replay.active) replay_seek(vm_.replay, 0, replay_tt()), vm_.replay.playing = false;
                else in_.home();
                break;
            case KEY_END:
                if (empty) {
                    vm_.scroll = 0;
                    if (vm_.replay.active) replay_seek(vm_.replay, int(vm_.replay.events.size()) - 1, replay_tt()), vm_.replay.playing = false;
                } else {
                    in_.end();
                }
                break;
            case KEY_UP: in_.history_prev(); break;
            case KEY_DOWN: in_.history_next(); break;
            case KEY_BACKSPACE: in_.backspace(); break;
            case KEY_DC: in_.del(); break;
            case KEY_ENTER: in_.feed_bytes("\r"); break;
            default: break;
        }
    } else {
        if (vm_.show_help) {
            vm_.show_help = false;
            if (ch != 3) return;
        }
        if (ch != 3) vm_.ctrl_c_time = -1;
        if (ch == 3) {  // Ctrl-C
            if (vm_.busy) {
                cancel_answer();
            } else if (!in_.empty()) {
                in_.clear();
            } else if (vm_.replay.active) {
                replay_exit(vm_.replay);
            } else if (vm_.ctrl_c_time >= 0 && now - vm_.ctrl_c_time < 3) {
                vm_.quit = true;
            } else {
                vm_.ctrl_c_time = now;
                set_status(vm_, "press Ctrl-C again to quit", false, now);
            }
        } else if (ch == 27) {  // Esc, or Alt-<key> (ESC followed at once by the key)
            wint_t c2 = 0;
            timeout(0);
            const int rc2 = get_wch(&c2);
            timeout(30);
            if (rc2 == ERR) {
                if (vm_.busy) cancel_answer();
                else if (vm_.replay.active) replay_exit(vm_.replay);
                else vm_.status.clear();
            } else if (rc2 == OK && (c2 == L'\r' || c2 == L'\n')) {
                in_.insert_newline();
            } else if (rc2 == OK) {
                std::string alt(1, '\x1b');  // (not "\x1b" + ...: GCC 12 warns falsely on that, -Wrestrict)
                alt += wide_to_utf8(std::wstring(1, wchar_t(c2)));
                in_.feed_bytes(alt);
            } else {
                handle_key(rc2, c2);
            }
        } else if (ch == 4 && in_.empty()) {  // Ctrl-D on an empty line
            vm_.quit = true;
        } else if (ch == 12) {  // Ctrl-L
            clearok(curscr, TRUE);
        } else if (ch == 26) {  // Ctrl-Z
            // not mid-answer: the decoder's clocks would count the stop, and its speeds would be wrong
            if (vm_.busy) set_status(vm_, "Ctrl-Z suspends once the answer is done (Esc cancels it)", true, now);
            else r_.suspend();
        } else {
            in_.feed_wchar(wchar_t(ch));
        }
    }
    while (in_.has_line()) submit(in_.take_line());
    if (in_.eof()) vm_.quit = true;
}

int Tui::run() {
    vm_.settings = client_.settings;
    fill_transcript(vm_, client_);
    if (const size_t n = client_.backend->messages().size(); client_.opts.resume && n > 0)
        set_status(vm_, "resumed " + std::to_string(n) + " messages from " + client_.session_file, false, now_s());
    if (!r_.start()) return -1;
    in_.start(client_.history_file);
    bool dirty = true;
    double last_draw = 0;
    while (!vm_.quit) {
        if (g_signal) {
            vm_.quit = true;
            break;
        }
        wint_t ch = 0;
        int rc = get_wch(&ch);
        if (rc != ERR) {
            timeout(0);
            int n = 0;
            while (rc != ERR && n++ < 512 && !vm_.quit) {
                handle_key(rc, ch);
                rc = get_wch(&ch);
            }
            timeout(30);
            dirty = true;
        }
        if (drain()) dirty = true;
        const double now = now_s();
        if (replay_tick(vm_.replay, now, replay_tt())) dirty = true;
        if ((vm_.busy || vm_.replay.playing) && now - last_draw > 0.1) dirty = true;
        if (!vm_.status.empty() && !vm_.status_error && now - vm_.status_time > 8 && now - last_draw > 1) dirty = true;
        if (dirty) {
            InputView iv;
            iv.line = in_.line();
            iv.point = in_.point();
            if (vm_.busy) iv.hint = "decoding… (Esc cancels)";
            page_ = std::max(1, LINES / 2);
            const int max_scroll = r_.draw(vm_, iv, now);
            if (vm_.scroll > max_scroll) vm_.scroll = max_scroll;
            last_draw = now;
            dirty = false;
        }
    }
    // Leaving: stop the answer, restore the terminal, keep the conversation.
    client_.backend->cancel_all();
    client_.backend->wait_idle();
    drain();
    in_.stop();
    r_.stop();
    return g_signal ? 128 + int(g_signal) : 0;
}


int run_tui(ChatClient& client) {
    Tui tui(client);
    return tui.run();
}

}  // namespace fdl::ui
