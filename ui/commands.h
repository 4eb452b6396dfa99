// Slash commands: parsing, settings changes (validated by GenerateOptions::validate), help text,
// and the data directory where the input history and the last saved conversation live. No terminal code.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "ui/view_model.h"

namespace fdl::ui {

enum class CommandKind {
    None,       // not a command: a prompt (a line starting with "//" is a prompt starting with "/")
    Threshold,  // /threshold 0.8
    Block,      // /block 32
    Sub,        // /sub 8
    Cache,      // /cache none|prefix|dual|dual-overlap
    Unmask,     // /unmask confidence|prefix
    Mode,       // /mode ar|diffusion|compare
    MaxTokens,  // /n 256
    Temperature,// /temp 0.7
    Delay,      // /delay 100  (slow motion, ms per forward pass)
    System,     // /system TEXT
    Clear,      // /clear
    History,    // /history [N|all]: earlier exchanges each prompt keeps
    Save,       // /save FILE
    Load,       // /load FILE
    Replay,     // /replay [SPEED|off]
    Help,       // /help
    Quit,       // /quit
    Unknown,
};

struct Command {
    CommandKind kind = CommandKind::None;
    std::string name;  // as typed, without the '/'
    std::string arg;   // the rest of the line, trimmed
    std::string text;  // CommandKind::None: the prompt to send
};

Command parse_command(std::string_view line);

// Applies a settings command (threshold, block, sub, cache, mode, n, temp, delay) to `s`.
// The new settings are checked with GenerateOptions::validate; on any problem `s` is unchanged
// and the message says why. Returns true on success (message: the new setting).
bool apply_setting(Settings& s, const Command& c, std::string& message);
bool is_setting(CommandKind k);

// /history's argument: "all" -> -1, a whole number N >= 0 -> N; anything else -> -2.
int parse_history_turns(const std::string& arg);

// Lines of the /help overlay (keys and commands).
std::vector<std::string> help_lines();

// $XDG_DATA_HOME/fastdllm or ~/.local/share/fastdllm ("" when neither can be found).
std::string data_dir();
// Creates the directory (and parents); false on failure.
bool ensure_dir(const std::string& dir);

}  // namespace fdl::ui
