// run_chat: starts the chat service (which loads the model) unless a backend (a server) is given,
// restores a saved conversation when asked, then runs the full-screen TUI or the plain REPL as
// its client, and saves the conversation at the end.
#include "ui/chat_app.h"

#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <filesystem>

#include "engine/io/error.h"
#include "engine/model/load_progress.h"
#include "ui/chat_client.h"
#include "ui/plain_repl.h"
#include "ui/signals.h"
#include "ui/tui.h"

namespace fdl {

int run_chat(const ChatAppOptions& opts, std::unique_ptr<ChatBackend> backend) {
    using namespace ui;
    std::setlocale(LC_ALL, "");
    ChatClient client;
    client.opts = opts;
    try {
        Settings& s = client.settings;
        if (backend) {
            client.backend = std::move(backend);
            client.info = client.backend->info();
            s.server = client.info.server;
        } else {
            ChatServiceOptions so;
            so.model_dir = opts.model_dir;
            so.ar_model_dir = opts.ar_model_dir;
            so.weight_type = opts.dtype;
            so.progress = stderr_load_progress(opts.model_dir);
            auto svc = std::make_unique<ChatService>(so);
            client.lane_text[0] = TokenText::of(svc->model().tokenizer(), svc->config().eos_token_ids);
            client.info = svc->info();
            client.backend = std::move(svc);
            s.threads = opts.threads;
            s.weights = client.info.weights;
        }
        ChatBackend& svc = *client.backend;
        if (opts.system_set) svc.set_system(opts.system);
        if (opts.history_turns != -2) svc.set_history_turns(opts.history_turns);
        s.gen = opts.gen;
        if (!opts.gen_mode_set) s.gen.mode = client.info.diffusion ? DecodeMode::Diffusion : DecodeMode::AR;
        s.chat = opts.chat_mode;
        if (s.compare()) s.gen.mode = DecodeMode::Diffusion;
        s.model_name = client.info.name;
        s.gen.validate();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fastdllm chat: %s\n", e.what());
        return 1;
    }
    const std::string dir = data_dir();
    const bool have_dir = ensure_dir(dir);
    client.session_file = !opts.session_file.empty() ? opts.session_file : (have_dir ? dir + "/session.json" : "");
    client.history_file = have_dir ? dir + "/history" : "";
    if (opts.resume) {
        if (client.session_file.empty() || !std::filesystem::exists(client.session_file)) {
            std::fprintf(stderr, "fastdllm chat: no saved session%s%s; starting a new conversation\n",
                         client.session_file.empty() ? "" : " at ", client.session_file.c_str());
        } else {
            try {
                client.backend->load(client.session_file);
                if (opts.system_set) client.backend->set_system(opts.system);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "fastdllm chat: cannot resume: %s\n", e.what());
                return 1;
            }
        }
    }
    client.saved_text = client.backend->saved_text();
    install_signals();

    const bool plain = opts.plain || !::isatty(0) || !::isatty(1);
    int rc = 0;
    bool save = true;
    if (!plain) {
        rc = run_tui(client);
        if (rc < 0) rc = run_plain(client);  // curses could not start
    } else {
        // A piped run should not replace the conversation a user keeps for --resume.
        save = ::isatty(0) || !opts.session_file.empty();
        rc = run_plain(client);
    }
    if (save) {
        std::string err;
        client.save_session(err);
        if (!err.empty()) std::fprintf(stderr, "fastdllm chat: could not save the conversation: %s\n", err.c_str());
    }
    return rc;
}

}  // namespace fdl
