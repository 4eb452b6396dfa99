// Entry point of `fastdllm chat`: the ncurses TUI, or a plain readline REPL when stdin/stdout
// is not a terminal (or --plain), on a model loaded here or on a server (--server URL).
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "engine/chat/chat_service.h"
#include "engine/decode/generate.h"

namespace fdl {

struct ChatAppOptions {
    std::string model_dir;     // the chat model (default: assets/models/demo-dllm)
    std::string ar_model_dir;  // AR baseline for compare mode ("" = demo-ar beside model_dir, if present)
    GenerateOptions gen;       // decoding settings at start (changeable at run time)
    bool gen_mode_set = false; // --mode was given (otherwise: diffusion for dLLMs, ar for AR models)
    ChatMode chat_mode = ChatMode::Single;  // --mode compare: AR model, then diffusion model, side by side
    std::string system;        // --system
    bool system_set = false;
    bool plain = false;        // --plain
    bool resume = false;       // --resume: continue the last saved session
    std::string session_file;  // --session FILE ("" = <data dir>/fastdllm/session.json)
    int threads = 0;           // already applied by the app; shown in the status bar
    std::optional<WeightType> dtype;  // weights in memory (LoadOptions::weight_type; empty: auto)
    int history_turns = -2;    // --history: earlier exchanges in each prompt (-1 all; -2 = the model's default)
};

// Runs the chat until the user quits. Returns the process exit code. Errors loading models are
// reported on stderr (before the TUI starts) with a non-zero code. With `backend` (a RemoteChat)
// the chat uses it instead of loading opts.model_dir; opts.gen is then already resolved against
// the backend's info().
int run_chat(const ChatAppOptions& opts, std::unique_ptr<ChatBackend> backend = nullptr);

}  // namespace fdl
