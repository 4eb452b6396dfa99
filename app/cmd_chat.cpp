// fastdllm chat: the terminal chat (ncurses TUI, or a plain REPL outside a terminal).
#include <iostream>
#include <sys/stat.h>

#include "app/commands.h"
#include "engine/io/error.h"
#include "engine/model/model_config.h"
#ifdef FASTDLLM_HAVE_UI
#include "ui/chat_app.h"
#include "ui/commands.h"
#endif

namespace fdl::cli {

int cmd_chat(int argc, char** argv, int first) {
#ifdef FASTDLLM_HAVE_UI
    ChatAppOptions o;
    DecodeFlags flags;
    ArgParser p("chat", "[-m DIR] [--ar-model DIR] [--plain] [--resume] [options]");
    p.add({"-m", "--model", "DIR", "chat model folder (default: assets/models/demo-dllm)",
           [&](const std::string& v) { o.model_dir = v; }});
    p.add({"", "--ar-model", "DIR", "AR baseline for compare mode (default: demo-ar beside the model)",
           [&](const std::string& v) { o.ar_model_dir = v; }});
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
        std::cout << p.help() << "\n--mode also takes 'compare': each prompt answered by the AR model, then the dLLM, and the speedup\n(whole requests, prompt included; and over the prompts so far).\n";
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    if (o.model_dir.empty()) o.model_dir = default_model_dir();
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
