// fastdllm chat: the terminal chat (ncurses TUI, or a plain REPL outside a terminal), on a model
// loaded here or on one a server runs (--server URL).
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "app/commands.h"
#include "engine/io/error.h"
#include "engine/model/model_config.h"
#ifdef FASTDLLM_HAVE_UI
#include "client/remote_chat.h"
#include "ui/chat_app.h"
#include "ui/commands.h"
#endif

namespace fdl::cli {

int cmd_chat(int argc, char** argv, int first) {
#ifdef FASTDLLM_HAVE_UI
    ChatAppOptions o;
    DecodeFlags flags;
    client::RemoteChatOptions remote;
    bool model_given = false;
    ArgParser p("chat", "[-m DIR | --server URL] [--ar-model DIR] [--plain] [--resume] [options]");
    p.add({"-m", "--model", "DIR", "chat model folder, or ORG/NAME in the Hugging Face cache (default: assets/models/demo-dllm)",
           [&](const std::string& v) { o.model_dir = v, model_given = true; }});
    p.add({"", "--ar-model", "DIR", "AR baseline for compare mode (default: demo-ar beside the model)",
           [&](const std::string& v) { o.ar_model_dir = v, model_given = true; }});
    p.add({"", "--server", "URL",
           "chat with a model a server runs instead of loading one: fastdllm serve or any OpenAI-compatible "
           "server (SGLang, vLLM, llama-server, ...) at URL, e.g. http://127.0.0.1:8080; the block view "
           "follows when the server streams its decoding steps (fastdllm serve does)",
           [&](const std::string& v) { remote.url = v; }});
    p.add({"", "--api-key", "KEY", "with --server: sent as 'Authorization: Bearer KEY' (default: $FASTDLLM_API_KEY)",
           [&](const std::string& v) { remote.api_key = v; }});
    p.add({"", "--remote-model", "NAME", "with --server: the model to ask for (default: the first the server lists)",
           [&](const std::string& v) { remote.model = v; }});
    p.add({"", "--ar-remote-model", "NAME",
           "with --server: compare mode's AR baseline (default: the model the server lists as its AR baseline, "
           "else the chat model decoded autoregressively)",
           [&](const std::string& v) { remote.ar_model = v; }});
    p.add({"", "--system", "TEXT", "system prompt", [&](const std::string& v) { o.system = v; o.system_set = true; }});
    p.add({"", "--plain", "", "a plain line-based REPL instead of the full-screen TUI",
           [&](const std::string&) { o.plain = true; }});
    p.add({"", "--resume", "", "continue the conversation saved at the last exit", [&](const std::string&) { o.resume = true; }});
    p.add({"", "--session", "FILE", "where the conversation is saved (default: ~/.local/share/fastdllm/session.json)",
           [&](const std::string& v) { o.session_file = v; }});
    p.add({"", "--history", "N|all",
           "earlier exchanges each new prompt keeps (default: the model's config.json, else all; the demo "
           "models say 0: they were trained on single questions)",
           [&](const std::string& v) {
               o.history_turns = ui::parse_history_turns(v);
               if (o.history_turns == -2)
                   throw UsageError{"--history takes a number of exchanges (0 or more) or 'all', not '" + v + "'"};
           }});
    add_decode_flags(p, flags);
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help() << "\n--mode also takes 'compare': each prompt answered by the AR model, then the dLLM, and the speedup\n(whole requests, prompt included; and over the prompts so far).\nWith --server the decoding flags travel with each request; the server decodes (docs/cli.md).\n";
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    if (!remote.url.empty()) {
        if (model_given) throw UsageError{"--server uses the server's model: leave out -m and --ar-model"};
        if (flags.dtype) throw UsageError{"--dtype is the server's choice with --server"};
        if (remote.api_key.empty())
            if (const char* k = std::getenv("FASTDLLM_API_KEY")) remote.api_key = k;
        std::unique_ptr<client::RemoteChat> chat;
        try {
            chat = std::make_unique<client::RemoteChat>(remote);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "fastdllm chat: %s\n", e.what());
            return 1;
        }
        const ChatBackendInfo info = chat->info();
        o.gen_mode_set = flags.decoder.has_value() || flags.chat_mode == ChatMode::Compare;
        o.chat_mode = flags.chat_mode;
        finish_decode_flags(flags, info.diffusion, info.block_size);
        o.gen = flags.gen;
        o.gen.record_steps = false;
        return run_chat(o, std::move(chat));
    }
    if (!remote.api_key.empty() || !remote.model.empty() || !remote.ar_model.empty())
        throw UsageError{"--api-key, --remote-model and --ar-remote-model go with --server URL"};
    o.model_dir = resolve_model_dir(o.model_dir);
    if (!o.ar_model_dir.empty()) o.ar_model_dir = resolve_model_dir(o.ar_model_dir);
    struct stat st {};
    if (::stat(o.model_dir.c_str(), &st) != 0)
        throw file_error(o.model_dir, "no such model folder (give one with -m DIR; the demo models live in assets/models/)");
    const ModelConfig cfg = ModelConfig::from_dir(o.model_dir);
    o.gen_mode_set = flags.decoder.has_value() || flags.chat_mode == ChatMode::Compare;
    o.chat_mode = flags.chat_mode;
    o.threads = finish_decode_flags(flags, cfg.is_diffusion, cfg.bd_size);
    o.gen = flags.gen;
    o.dtype = flags.dtype;
    o.gen.record_steps = false;
    return run_chat(o);
#else
    (void)argc;
    (void)argv;
    (void)first;
    throw Error("this fastdllm was built without the chat (-DFASTDLLM_UI=OFF, no ncurses): rebuild with "
                "-DFASTDLLM_UI=ON, or use 'fastdllm generate'");
#endif
}

}  // namespace fdl::cli
