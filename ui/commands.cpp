#include "ui/commands.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "engine/io/error.h"

namespace fdl::ui {

namespace {

std::string trim(std::string_view s) {
    size_t a = 0, b = s.size();
    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r')) b--;
    return std::string(s.substr(a, b - a));
}

bool parse_int(const std::string& s, int& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (*end != '\0' || errno || v < -1000000000L || v > 1000000000L) return false;
    out = int(v);
    return true;
}

bool parse_float(const std::string& s, float& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (*end != '\0' || errno || v != v) return false;
    out = float(v);
    return true;
}

}  // namespace

Command parse_command(std::string_view line) {
    Command c;
    const std::string t = trim(line);
    if (t.size() < 1 || t[0] != '/' || (t.size() >= 2 && t[1] == '/')) {
        c.kind = CommandKind::None;
        c.text = (t.size() >= 2 && t[0] == '/' && t[1] == '/') ? std::string(line).substr(std::string(line).find('/') + 1)
                                                                : std::string(line);
        return c;
    }
    size_t sp = t.find_first_of(" \t");
    c.name = t.substr(1, sp == std::string::npos ? std::string::npos : sp - 1);
    c.arg = sp == std::string::npos ? "" : trim(std::string_view(t).substr(sp));
    static const struct {
        const char* name;
        CommandKind kind;
    } table[] = {
        {"threshold", CommandKind::Threshold}, {"t", CommandKind::Threshold}, {"block", CommandKind::Block},
        {"sub", CommandKind::Sub}, {"cache", CommandKind::Cache}, {"unmask", CommandKind::Unmask}, {"mode", CommandKind::Mode},
        {"n", CommandKind::MaxTokens}, {"max", CommandKind::MaxTokens}, {"temp", CommandKind::Temperature},
        {"delay", CommandKind::Delay}, {"system", CommandKind::System}, {"clear", CommandKind::Clear},
        {"history", CommandKind::History},
        {"save", CommandKind::Save}, {"load", CommandKind::Load}, {"replay", CommandKind::Replay},
        {"help", CommandKind::Help}, {"h", CommandKind::Help}, {"?", CommandKind::Help}, {"quit", CommandKind::Quit},
        {"exit", CommandKind::Quit}, {"q", CommandKind::Quit},
    };
    c.kind = CommandKind::Unknown;
    for (auto& e : table)
        if (c.name == e.name) c.kind = e.kind;
    return c;
}

bool is_setting(CommandKind k) {
    switch (k) {
        case CommandKind::Threshold:
        case CommandKind::Block:
        case CommandKind::Sub:
        case CommandKind::Cache:
        case CommandKind::Unmask:
        case CommandKind::Mode:
        case CommandKind::MaxTokens:
        case CommandKind::Temperature:
        case CommandKind::Delay: return true;
        default: return false;
    }
}

bool apply_setting(Settings& s, const Command& c, std::string& message) {
    Settings n = s;
    GenerateOptions& g = n.gen;
    const std::string& a = c.arg;
    auto need = [&](const char* what) {
        message = "/" + c.name + " needs " + what;
        return false;
    };
    switch (c.kind) {
        case CommandKind::Threshold:
            if (!parse_float(a, g.threshold)) return need("a number in [0, 1], e.g. /threshold 0.8");
            message = "threshold " + fmt(g.threshold, 2);
            break;
        case CommandKind::Block:
            if (!parse_int(a, g.block_size)) return need("a whole number, e.g. /block 32");
            message = "block size " + std::to_string(g.block_size);
            break;
        case CommandKind::Sub:
            if (!parse_int(a, g.sub_block_size)) return need("a whole number, e.g. /sub 8");
            message = "sub-block size " + std::to_string(g.sub_block_size);
            break;
        case CommandKind::Cache:
            if (!parse_cache_mode(a, g.cache)) return need("none, prefix, dual or dual-overlap");
            message = std::string("cache ") + cache_mode_name(g.cache);
            break;
        case CommandKind::Unmask:
            if (!parse_unmask_order(a, g.unmask)) return need("confidence (the paper's) or prefix (left to right)");
            message = std::string("unmask ") + unmask_order_name(g.unmask);
            break;
        case CommandKind::Mode:
            if (a == "compare") {
                n.chat = ChatMode::Compare;
                g.mode = DecodeMode::Diffusion;
            } else if (parse_decode_mode(a, g.mode)) {
                n.chat = ChatMode::Single;
            } else {
                return need("ar, diffusion or compare");
            }
            message = "mode " + (n.compare() ? std::string("compare") : std::string(decode_mode_name(g.mode)));
            break;
        case CommandKind::MaxTokens:
            if (!parse_int(a, g.max_new_tokens)) return need("a whole number, e.g. /n 256");
            message = "max new tokens " + std::to_string(g.max_new_tokens);
            break;
        case CommandKind::Temperature:
            if (!parse_float(a, g.sampling.temperature)) return need("a number >= 0 (0 = greedy)");
            message = "temperature " + fmt(g.sampling.temperature, 2);
            break;
        case CommandKind::Delay:
            if (!parse_int(a, n.delay_ms) || n.delay_ms < 0 || n.delay_ms > 10000)
                return need("milliseconds in [0, 10000] (0 = off)");
            message = n.delay_ms ? "slow motion: " + std::to_string(n.delay_ms) + " ms after every forward pass" : "slow motion off";
            s = n;
            return true;
        default: message = "not a setting: /" + c.name; return false;
    }
    try {
        // Check the combination as it will run (compare mode also runs the AR decoding).
        g.validate();
        if (c.kind == CommandKind::Threshold || c.kind == CommandKind::Block || c.kind == CommandKind::Sub) {
            GenerateOptions d = g;  // diffusion settings are checked even while decoding AR
            d.mode = DecodeMode::Diffusion;
            d.validate();
        }
        if (n.compare()) {
            GenerateOptions ar = g;
            ar.mode = DecodeMode::AR;
            ar.validate();
        }
    } catch (const fdl::Error& e) {
        message = e.what();
        return false;
    }
    s = n;
    return true;
}

int parse_history_turns(const std::string& arg) {
    if (arg == "all") return -1;
    if (arg.empty() || arg.size() > 7 || arg.find_first_not_of("0123456789") != std::string::npos) return -2;
    return std::stoi(arg);
}

std::vector<std::string> help_lines() {
    return {
        "Keys",
        "  Enter            send the prompt, or run a /command",
        "  Alt-Enter        new line (or end the line with \\ and press Enter)",
        "  Esc, Ctrl-C      cancel the answer being decoded;   Ctrl-Z  suspend (fg)",
        "  Ctrl-C twice     quit when idle (also /quit, or Ctrl-D on an empty line)",
        "  PgUp PgDn End    scroll the transcript; End goes back to the bottom",
        "  Left Right       step through the last answer (empty prompt; Esc leaves)",
        "  Up Down          prompt history, kept across runs;   F1  this help",
        "Commands",
        "  /threshold 0.8   confidence that unmasks a cell in parallel, in [0, 1]",
        "  /block 32 /sub 8 block size; sub-block size (must divide the block)",
        "  /cache MODE      none | prefix | dual | dual-overlap (dual: the paper's)",
        "  /unmask ORDER    confidence (the paper's) | prefix (left to right, ours)",
        "  /mode MODE       ar | diffusion | compare (AR, then diffusion: speedup)",
        "  /n 256 /temp 0.7 max new tokens; sampling temperature (0 = greedy)",
        "  /system TEXT     set the system prompt;  /clear  forget the conversation",
        "  /history N|all   earlier exchanges each prompt keeps (demo models: 0)",
        "  /save FILE       save the conversation as JSON;  /load FILE  load one",
        "  /replay [SPEED]  replay the last answer (events/s);  /replay off",
        "  /delay MS        slow motion: pause MS after each forward pass (0 = off)",
        "  /help /quit      this help; leave (the chat is kept for --resume)",
        "Block view: ░ masked · colour: the step that decided a cell · bright: latest",
    };
}

std::string data_dir() {
    const char* x = std::getenv("XDG_DATA_HOME");
    if (x && *x) return std::string(x) + "/fastdllm";
    const char* h = std::getenv("HOME");
    if (h && *h) return std::string(h) + "/.local/share/fastdllm";
    return "";
}

bool ensure_dir(const std::string& dir) {
    if (dir.empty()) return false;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    return std::filesystem::is_directory(dir, ec);
}

}  // namespace fdl::ui
