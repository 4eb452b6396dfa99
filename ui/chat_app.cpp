// run_chat: loads the model(s), then runs the ncurses TUI or the plain REPL. Decoding runs on a
// worker thread that streams DecodeEvents into a mutex-protected queue; the UI thread polls keys
// every 30 ms, drains the queue into the view model and redraws. Nothing here blocks on the model.
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include "ui/chat_app.h"
#include "engine/model/load_progress.h"

#include <ncursesw/ncurses.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <sys/select.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "engine/io/files.h"
#include "engine/model/model.h"
#include "ui/commands.h"
#include "ui/line_input.h"
#include "ui/renderer.h"
#include "ui/text.h"
#include "ui/view_model.h"

namespace fdl {

namespace ui {
namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

volatile std::sig_atomic_t g_signal = 0;
std::atomic<bool>* g_cancel_on_sigint = nullptr;  // plain mode: Ctrl-C cancels the answer being decoded

extern "C" void on_signal(int sig) {
    g_signal = sig;
    if (sig == SIGINT && g_cancel_on_sigint) g_cancel_on_sigint->store(true);
}

void install_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR and the loop looks at the flag
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

std::string expand_home(const std::string& path) {
    if (path.size() >= 2 && path[0] == '~' && path[1] == '/') {
        const char* h = std::getenv("HOME");
        if (h) return std::string(h) + path.substr(1);
    }
    return path;
}

// The conversation as JSON. Typed text may hold invalid UTF-8: it is saved as U+FFFD.
std::string session_text(const ChatSession& s) {
    return s.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// ---------------------------------------------------------------------------------------------
// What the worker reports to the UI thread.

struct WorkerMsg {
    enum class Kind { Event, LaneStart, LaneDone, Info, JobDone } kind = Kind::Info;
    int lane = 0;
    DecodeEvent ev;
    std::string text;   // LaneStart: the label; LaneDone: the stored reply; Info: the message
    std::string error;  // LaneDone: why it failed
};
using Sink = std::function<void(WorkerMsg&&)>;

struct App {
    ChatAppOptions opts;
    std::unique_ptr<Model> model;
    std::unique_ptr<ChatSession> session;
    TokenText tt;
    // AR baseline for compare mode (loaded on first use, on the worker thread)
    std::unique_ptr<Model> ar_model;
    std::unique_ptr<ChatSession> ar_session;
    TokenText ar_tt;
    std::string ar_label;
    Settings settings;
    std::string session_file, history_file;
    std::string saved_text;  // the conversation as the session file holds it (set at start)

    std::atomic<bool> cancel{false};
    std::thread worker;
    std::mutex mu;
    std::deque<WorkerMsg> queue;

    std::string lane_label(int lane, const GenerateOptions& g) const {
        if (lane == 1) return ar_label;
        return model->config().name + (g.mode == DecodeMode::AR ? " · AR decoding" : " · diffusion");
    }
};

// Finds or loads the AR baseline: --ar-model, else demo-ar beside the chat model, else the chat
// model itself decoded autoregressively.
void ensure_ar(App& app, const Sink& sink) {
    if (app.ar_session) return;
    std::string dir = app.opts.ar_model_dir;
    if (dir.empty()) {
        namespace fs = std::filesystem;
        std::error_code ec;
        const fs::path m = fs::weakly_canonical(fs::path(app.opts.model_dir), ec);
        const fs::path cand = m.parent_path() / "demo-ar";
        if (!ec && fs::exists(cand / "config.json", ec) && fs::weakly_canonical(cand, ec) != m) dir = cand.string();
    }
    if (dir.empty()) {
        app.ar_session = std::make_unique<ChatSession>(*app.model);
        app.ar_session->set_history_turns(app.session->history_turns());
        app.ar_tt = app.tt;
        app.ar_label = app.model->config().name + " · AR decoding (no AR model found: same weights)";
        return;
    }
    WorkerMsg info;
    info.text = "loading the AR baseline " + dir + " …";
    sink(std::move(info));
    LoadOptions lo;
    lo.weight_type = app.opts.dtype;
    const double t0 = now_s();
    lo.progress = load_progress([&](const std::string& text) {  // on the status line
        WorkerMsg m;
        m.text = "loading the AR baseline " + dir + " … " + text;
        sink(std::move(m));
    });
    app.ar_model = Model::load(dir, lo);
    WorkerMsg loaded;  // replaces the "loading" line, which would otherwise stay up for its 8 s
    loaded.text = "loaded the AR baseline " + app.ar_model->config().name + " in " + fmt(now_s() - t0, 2) + " s";
    sink(std::move(loaded));
    app.ar_session = std::make_unique<ChatSession>(*app.ar_model);
    app.ar_session->set_history_turns(app.session->history_turns());  // follows the chat's setting
    app.ar_tt = TokenText::of(app.ar_model->tokenizer(), app.ar_model->config().eos_token_ids);
    app.ar_label = app.ar_model->config().name + " · AR baseline";
}

void pause_ms(int ms, const std::atomic<bool>& cancel) {
    for (int t = 0; t < ms && !cancel.load(); t += 10) std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10, ms - t)));
}

// One prompt, answered by one lane (or two in compare mode). Runs on the worker thread in the TUI
// and on the main thread in plain mode.
void run_job(App& app, const std::string& prompt, const Settings s, const Sink& sink) {
    auto callback = [&](int lane) {
        return [&, lane](const DecodeEvent& ev) {
            WorkerMsg m;
            m.kind = WorkerMsg::Kind::Event;
            m.lane = lane;
            m.ev = ev;
            sink(std::move(m));
            if (s.delay_ms > 0 && ev.type == DecodeEvent::Type::Step) pause_ms(s.delay_ms, app.cancel);
        };
    };
    auto lane_run = [&](int lane, ChatSession& session, const GenerateOptions& g) -> bool {
        WorkerMsg start;
        start.kind = WorkerMsg::Kind::LaneStart;
        start.lane = lane;
        start.text = app.lane_label(lane, g);
        sink(std::move(start));
        WorkerMsg done;
        done.kind = WorkerMsg::Kind::LaneDone;
        done.lane = lane;
        try {
            GenerateOptions opts = g;
            opts.record_steps = false;
            session.reply(prompt, opts, callback(lane), &app.cancel);
            done.text = session.messages().empty() ? "" : session.messages().back().content;
        } catch (const std::exception& e) {
            done.error = e.what();
        }
        const bool ok = done.error.empty();
        sink(std::move(done));
        if (const int n = session.left_out_for_context(); ok && n > 0) {
            WorkerMsg info;
            info.kind = WorkerMsg::Kind::Info;
            info.text = std::to_string(n) + (n == 1 ? " earlier message" : " earlier messages") +
                        " left out of the prompt to fit the model's context (" +
                        std::to_string(session.model().config().max_position_embeddings) + " positions)";
            sink(std::move(info));
        }
        return ok;
    };
    bool go_on = true;
    if (s.compare) {
        try {
            ensure_ar(app, sink);
            app.ar_session->from_json(app.session->to_json());  // the same conversation so far
        } catch (const std::exception& e) {
            WorkerMsg done;
            done.kind = WorkerMsg::Kind::LaneDone;
            done.lane = 1;
            done.error = std::string("AR baseline: ") + e.what();
            sink(std::move(done));
            go_on = false;
        }
        if (go_on) {
            GenerateOptions g = s.gen;
            g.mode = DecodeMode::AR;
            go_on = lane_run(1, *app.ar_session, g) && !app.cancel.load();
        }
    }
    if (go_on) {
        GenerateOptions g = s.gen;
        if (s.compare) g.mode = DecodeMode::Diffusion;
        lane_run(0, *app.session, g);
    }
    WorkerMsg end;
    end.kind = WorkerMsg::Kind::JobDone;
    sink(std::move(end));
}

void save_session(App& app, std::string& error) {
    if (app.session_file.empty()) return;
    if (session_text(*app.session) == app.saved_text) return;  // unchanged: keep the file as it is
    try {
        namespace fs = std::filesystem;
        const fs::path p(app.session_file);
        if (p.has_parent_path()) ensure_dir(p.parent_path().string());
        write_file_atomic(app.session_file, session_text(*app.session));
    } catch (const std::exception& e) {
        error = e.what();
    }
}

void fill_transcript(ViewModel& vm, App& app) {
    vm.transcript.clear();
    vm.scroll = 0;
    for (auto& m : app.session->messages()) {
        if (m.role == "user") add_entry(vm, Entry::Kind::User, "you", m.content);
        else if (m.role == "assistant") add_entry(vm, Entry::Kind::Assistant, app.model->config().name, m.content);
        else add_entry(vm, Entry::Kind::Info, m.role, m.content);
    }
}

// Commands both front ends share. Returns a message; `error` says whether it is one. Sets
// `handled` false for commands each front end handles itself (help, quit, replay).
std::string run_shared_command(App& app, Settings& settings, const Command& c, bool busy, bool& error, bool& handled) {
    handled = true;
    error = false;
    std::string msg;
    if (is_setting(c.kind)) {
        error = !apply_setting(settings, c, msg);
        return msg;
    }
    auto refuse_busy = [&] {
        error = true;
        return std::string("wait for the answer to finish (Esc cancels it)");
    };
    switch (c.kind) {
        case CommandKind::System:
            if (busy) return refuse_busy();
            app.session->set_system(c.arg);
            return c.arg.empty() ? "system prompt removed" : "system prompt set";
        case CommandKind::Clear:
            if (busy) return refuse_busy();
            app.session->clear();
            return "conversation cleared";
        case CommandKind::History: {
            auto describe = [](int n) {
                return n < 0 ? std::string("all earlier exchanges") : std::to_string(n) + " earlier exchange" + (n == 1 ? "" : "s");
            };
            if (c.arg.empty()) return "each prompt keeps " + describe(app.session->history_turns()) + " (/history N|all)";
            const int n = parse_history_turns(c.arg);
            if (n == -2) {
                error = true;
                return "/history takes a number of exchanges (0 or more) or 'all'";
            }
            if (busy) return refuse_busy();
            app.session->set_history_turns(n);
            if (app.ar_session) app.ar_session->set_history_turns(n);
            return "each prompt now keeps " + describe(n);
        }
        case CommandKind::Save: {
            if (c.arg.empty()) {
                error = true;
                return "/save needs a file name";
            }
            if (busy) return refuse_busy();
            try {
                const std::string path = expand_home(c.arg);
                write_file_atomic(path, session_text(*app.session));
                return "saved " + std::to_string(app.session->messages().size()) + " messages to " + path;
            } catch (const std::exception& e) {
                error = true;
                return e.what();
            }
        }
        case CommandKind::Load: {
            if (c.arg.empty()) {
                error = true;
                return "/load needs a file name";
            }
            if (busy) return refuse_busy();
            const std::string path = expand_home(c.arg);
            try {
                const nlohmann::json j = nlohmann::json::parse(read_file(path));
                app.session->from_json(j);
                return "loaded " + std::to_string(app.session->messages().size()) + " messages from " + path;
            } catch (const nlohmann::json::exception& e) {
                error = true;
                return path + ": not valid JSON (" + e.what() + ")";
            } catch (const std::exception& e) {
                error = true;
                const std::string w = e.what();
                return w.rfind(path, 0) == 0 ? w : path + ": " + w;
            }
        }
        case CommandKind::Unknown:
            error = true;
            return "unknown command /" + c.name + " (/help lists the commands)";
        default: handled = false; return "";
    }
}

// =============================================================================================
// The TUI

class Tui {
public:
    explicit Tui(App& app) : app_(app) {}
    int run();

private:
    App& app_;
    ViewModel vm_;
    Renderer r_;
    LineInput in_;
    int page_ = 10;

    void submit(const std::string& line);
    void start_job(const std::string& prompt);
    void handle_key(int rc, wint_t ch);
    bool drain();
    void cancel_answer();
    void join_worker();
    const TokenText& replay_tt() const { return replay_lane_ == 1 ? app_.ar_tt : app_.tt; }
    int replay_lane_ = 0;
};

void Tui::cancel_answer() {
    if (!vm_.busy) return;
    app_.cancel.store(true);
    set_status(vm_, "cancelling…", false, now_s());
}

void Tui::join_worker() {
    if (app_.worker.joinable()) app_.worker.join();
}

void Tui::start_job(const std::string& prompt) {
    join_worker();
    app_.cancel.store(false);
    {
        std::lock_guard<std::mutex> lk(app_.mu);
        app_.queue.clear();
    }
    begin_answer(vm_, prompt, now_s());
    const Settings s = vm_.settings;
    App* app = &app_;
    app_.worker = std::thread([app, prompt, s] {
        run_job(*app, prompt, s, [app](WorkerMsg&& m) {
            std::lock_guard<std::mutex> lk(app->mu);
            app->queue.push_back(std::move(m));
        });
    });
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
    const std::string msg = run_shared_command(app_, vm_.settings, c, vm_.busy, error, handled);
    if (handled) {
        set_status(vm_, msg, error, now);
        if (!error && (c.kind == CommandKind::Clear || c.kind == CommandKind::Load)) {
            fill_transcript(vm_, app_);
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
    std::deque<WorkerMsg> msgs;
    {
        std::lock_guard<std::mutex> lk(app_.mu);
        msgs.swap(app_.queue);
    }
    if (msgs.empty()) return false;
    const double now = now_s();
    for (auto& m : msgs) {
        switch (m.kind) {
            case WorkerMsg::Kind::Event:
                if (m.ev.type == DecodeEvent::Type::Started) replay_lane_ = m.lane;
                on_decode_event(vm_, m.ev, m.lane == 1 ? app_.ar_tt : app_.tt, now);
                break;
            case WorkerMsg::Kind::LaneStart:
                begin_lane(vm_, m.lane, m.text, now);
                if (m.lane == 1 && !app_.ar_label.empty()) vm_.settings.ar_model_name = app_.ar_label;
                break;
            case WorkerMsg::Kind::LaneDone:
                if (vm_.live_entry < 0 && !m.error.empty()) {
                    add_entry(vm_, Entry::Kind::Error, "", m.error);
                    set_status(vm_, m.error, true, now);
                } else {
                    end_answer(vm_, m.error.empty() ? &m.text : nullptr, m.error, now);
                }
                break;
            case WorkerMsg::Kind::Info:
                set_status(vm_, m.text, false, now);
                break;
            case WorkerMsg::Kind::JobDone:
                end_job(vm_, now);
                join_worker();
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
                in_.feed_bytes("\x1b" + wide_to_utf8(std::wstring(1, wchar_t(c2))));
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
    vm_.settings = app_.settings;
    fill_transcript(vm_, app_);
    if (app_.opts.resume && !app_.session->messages().empty())
        set_status(vm_, "resumed " + std::to_string(app_.session->messages().size()) + " messages from " + app_.session_file,
                   false, now_s());
    if (!r_.start()) return -1;
    in_.start(app_.history_file);
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
    if (vm_.busy) app_.cancel.store(true);
    join_worker();
    drain();
    in_.stop();
    r_.stop();
    return g_signal ? 128 + int(g_signal) : 0;
}

// =============================================================================================
// The plain REPL (pipes, --plain)

class Plain {
public:
    explicit Plain(App& app) : app_(app) {}
    int run();

private:
    App& app_;
    Settings settings_;
    AnswerView view_;
    size_t printed_ = 0;
    int lane_ = 0;
    bool tty_in_ = false;
    bool tty_out_ = false;
    CompareState cmp_;
    bool quit_ = false;

    void handle(const std::string& line);
    void on_msg(WorkerMsg&& m);
    bool read_line(std::string& out);
};

void Plain::on_msg(WorkerMsg&& m) {
    switch (m.kind) {
        case WorkerMsg::Kind::Event:
            apply_event(view_, m.ev, m.lane == 1 ? app_.ar_tt : app_.tt);
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
        case WorkerMsg::Kind::LaneStart:
            view_ = AnswerView{};
            printed_ = 0;
            lane_ = m.lane;
            if (settings_.compare) std::printf("[%s]\n", m.text.c_str());
            std::fflush(stdout);
            break;
        case WorkerMsg::Kind::LaneDone:
            if (!m.error.empty()) {
                if (printed_) std::printf("\n");
                std::fflush(stdout);
                std::fprintf(stderr, "error: %s\n", m.error.c_str());
                break;
            }
            {
                std::string line = answer_summary(view_.stats);
                if (view_.cancelled) line += " · cancelled";
                if (settings_.delay_ms > 0) line += " · slowed by /delay";
                std::printf("\n[%s]\n", line.c_str());
                std::fflush(stdout);
                if (m.lane == 1 || settings_.compare) cmp_.record(m.lane, view_.stats, view_.cancelled, settings_);
            }
            break;
        case WorkerMsg::Kind::Info: std::fprintf(stderr, "%s\n", m.text.c_str()); break;
        case WorkerMsg::Kind::JobDone:
            if (const std::string line = finish_compare(cmp_); !line.empty()) std::printf("[%s]\n", line.c_str());
            std::fflush(stdout);
            break;
    }
}

void Plain::handle(const std::string& line) {
    const Command c = parse_command(line);
    if (c.kind == CommandKind::None) {
        bool blank = true;
        for (char ch : c.text) blank = blank && (ch == ' ' || ch == '\n' || ch == '\t');
        if (blank) return;
        cmp_.new_prompt();
        app_.cancel.store(false);
        g_cancel_on_sigint = &app_.cancel;
        run_job(app_, c.text, settings_, [this](WorkerMsg&& m) { on_msg(std::move(m)); });
        g_cancel_on_sigint = nullptr;
        if (g_signal == SIGINT) g_signal = 0;  // that Ctrl-C cancelled the answer
        return;
    }
    bool error = false, handled = false;
    const std::string msg = run_shared_command(app_, settings_, c, false, error, handled);
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
    settings_ = app_.settings;
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
        if (!app_.history_file.empty()) read_history(app_.history_file.c_str());
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
        if (tty_in_) history_add(line, app_.history_file);
        handle(line);
    }
    if (!pending.empty() && !quit_ && !g_signal) handle(pending);
    if (tty_in_ && !app_.history_file.empty()) history_truncate_file(app_.history_file.c_str(), 1000);
    if (g_signal && g_signal != SIGINT) return 128 + int(g_signal);
    return 0;
}

}  // namespace
}  // namespace ui

int run_chat(const ChatAppOptions& opts) {
    using namespace ui;
    std::setlocale(LC_ALL, "");
    App app;
    app.opts = opts;
    try {
        if (opts.model_dir.empty()) throw Error("no model folder given (-m DIR)");
        LoadOptions lo;
        lo.weight_type = opts.dtype;
        lo.progress = stderr_load_progress(opts.model_dir);
        app.model = Model::load(opts.model_dir, lo);
        app.session = std::make_unique<ChatSession>(*app.model);
        app.tt = TokenText::of(app.model->tokenizer(), app.model->config().eos_token_ids);
        if (opts.system_set) app.session->set_system(opts.system);
        if (opts.history_turns != -2) app.session->set_history_turns(opts.history_turns);
        Settings& s = app.settings;
        s.gen = opts.gen;
        if (!opts.gen_mode_set) s.gen.mode = app.model->config().is_diffusion ? DecodeMode::Diffusion : DecodeMode::AR;
        s.compare = opts.compare;
        if (s.compare) s.gen.mode = DecodeMode::Diffusion;
        s.model_name = app.model->config().name;
        s.threads = opts.threads;
        s.weights = weight_type_name(app.model->weight_type());
        s.gen.validate();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fastdllm chat: %s\n", e.what());
        return 1;
    }
    const std::string dir = data_dir();
    const bool have_dir = ensure_dir(dir);
    app.session_file = !opts.session_file.empty() ? opts.session_file : (have_dir ? dir + "/session.json" : "");
    app.history_file = have_dir ? dir + "/history" : "";
    if (opts.resume) {
        if (app.session_file.empty() || !std::filesystem::exists(app.session_file)) {
            std::fprintf(stderr, "fastdllm chat: no saved session%s%s; starting a new conversation\n",
                         app.session_file.empty() ? "" : " at ", app.session_file.c_str());
        } else {
            try {
                app.session->from_json(nlohmann::json::parse(read_file(app.session_file)));
                if (opts.system_set) app.session->set_system(opts.system);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "fastdllm chat: %s: cannot resume: %s\n", app.session_file.c_str(), e.what());
                return 1;
            }
        }
    }
    app.saved_text = session_text(*app.session);
    install_signals();

    const bool plain = opts.plain || !::isatty(0) || !::isatty(1);
    int rc = 0;
    bool save = true;
    if (!plain) {
        Tui tui(app);
        rc = tui.run();
        if (rc < 0) {  // curses could not start: fall back to the REPL
            Plain p(app);
            rc = p.run();
        }
    } else {
        // A piped run should not replace the conversation a user keeps for --resume.
        save = ::isatty(0) || !opts.session_file.empty();
        Plain p(app);
        rc = p.run();
    }
    if (save) {
        std::string err;
        save_session(app, err);
        if (!err.empty()) std::fprintf(stderr, "fastdllm chat: could not save the conversation: %s\n", err.c_str());
    }
    return rc;
}

}  // namespace fdl
