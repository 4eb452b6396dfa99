#include "ui/chat_client.h"

#include <cstdlib>

#include "engine/io/error.h"

namespace fdl::ui {

ChatRequest ChatClient::request(const std::string& prompt, const Settings& s) const {
    ChatRequest r;
    r.prompt = prompt;
    r.mode = s.chat;
    r.gen = s.gen;
    r.gen.record_steps = false;
    r.step_delay_ms = s.delay_ms;
    return r;
}

void ChatClient::on_lane_started(const ChatEvent& e) {
    if (e.lane < 0 || e.lane >= 2) return;
    if (e.model) lane_text[e.lane] = TokenText::of(e.model->tokenizer(), e.model->config().eos_token_ids);
    else if (e.tokens) lane_text[e.lane] = TokenText::of(e.tokens);
}

void ChatClient::save_session(std::string& error) {
    if (session_file.empty()) return;
    try {
        if (backend->saved_text() == saved_text) return;  // unchanged: keep the file as it is
        backend->save(session_file);
    } catch (const std::exception& e) {
        error = e.what();
    }
}

std::string expand_home(const std::string& path) {
    if (path.size() >= 2 && path[0] == '~' && path[1] == '/') {
        const char* h = std::getenv("HOME");
        if (h) return std::string(h) + path.substr(1);
    }
    return path;
}

std::string left_out_text(int n, int64_t context) {
    return std::to_string(n) + (n == 1 ? " earlier message" : " earlier messages") +
           " left out of the prompt to fit the model's context (" + std::to_string(context) + " positions)";
}

void fill_transcript(ViewModel& vm, const ChatClient& client) {
    vm.transcript.clear();
    vm.scroll = 0;
    for (auto& m : client.backend->messages()) {
        if (m.role == "user") add_entry(vm, Entry::Kind::User, "you", m.content);
        else if (m.role == "assistant") add_entry(vm, Entry::Kind::Assistant, client.info.name, m.content);
        else add_entry(vm, Entry::Kind::Info, m.role, m.content);
    }
}

std::string run_shared_command(ChatClient& client, Settings& settings, const Command& c, bool busy, bool& error,
                               bool& handled) {
    handled = true;
    error = false;
    ChatBackend& svc = *client.backend;
    std::string msg;
    if (is_setting(c.kind)) {
        error = !apply_setting(settings, c, msg);
        return msg;
    }
    auto refuse_busy = [&] {
        error = true;
        return std::string("wait for the answer to finish (Esc cancels it)");
    };
    // The answer's Done reaches this client a moment before the backend's worker lets go of the
    // request; a command that changes the conversation waits for that moment.
    if (!busy) svc.wait_idle();
    switch (c.kind) {
        case CommandKind::System:
            if (busy) return refuse_busy();
            svc.set_system(c.arg);
            return c.arg.empty() ? "system prompt removed" : "system prompt set";
        case CommandKind::Clear:
            if (busy) return refuse_busy();
            svc.clear();
            return "conversation cleared";
        case CommandKind::History: {
            auto describe = [](int n) {
                return n < 0 ? std::string("all earlier exchanges") : std::to_string(n) + " earlier exchange" + (n == 1 ? "" : "s");
            };
            if (c.arg.empty()) return "each prompt keeps " + describe(svc.history_turns()) + " (/history N|all)";
            const int n = parse_history_turns(c.arg);
            if (n == -2) {
                error = true;
                return "/history takes a number of exchanges (0 or more) or 'all'";
            }
            if (busy) return refuse_busy();
            svc.set_history_turns(n);  // compare mode's baseline follows it
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
                svc.save(path);
                return "saved " + std::to_string(svc.messages().size()) + " messages to " + path;
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
                svc.load(path);
                return "loaded " + std::to_string(svc.messages().size()) + " messages from " + path;
            } catch (const std::exception& e) {
                error = true;
                return e.what();
            }
        }
        case CommandKind::Unknown:
            error = true;
            return "unknown command /" + c.name + " (/help lists the commands)";
        default: handled = false; return "";
    }
}

}  // namespace fdl::ui
