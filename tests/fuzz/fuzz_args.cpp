// Command-line parsing: fdl::cli::ArgParser with the real decoding flags of `generate`/`chat`
// (add_decode_flags) plus switches and value options like theirs, and the parse_* helpers. The
// input is argv, NUL-separated. Every bad command line must be a UsageError (or fdl::Error from
// the option checks), never a crash or another exception.
#include <cstdint>
#include <string>
#include <vector>

#include "app/args.h"
#include "app/commands.h"
#include "engine/io/error.h"
#include "fuzz_util.h"

using namespace fdl::cli;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<std::string> args{"fastdllm", "generate"};
    std::string cur;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0) {
            args.push_back(cur);
            cur.clear();
        } else {
            cur.push_back(char(data[i]));
        }
    }
    args.push_back(cur);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    // Each helper on the first argument.
    const std::string& v = args[2];
    try { (void)parse_int("--n", v, -5, 1 << 20); } catch (const UsageError&) {}
    try { (void)parse_float("--x", v, 0, 1); } catch (const UsageError&) {}
    try { (void)parse_u64("--seed", v); } catch (const UsageError&) {}
    try { (void)parse_id_list("--prompt-ids", v); } catch (const UsageError&) {}

    std::string model, prompt;
    std::vector<int32_t> ids;
    bool as_json = false;
    DecodeFlags flags;
    ArgParser p("generate", "-m DIR -p TEXT [options]");
    p.add({"-m", "--model", "DIR", "model folder", [&](const std::string& x) { model = x; }});
    p.add({"-p", "--prompt", "TEXT", "the prompt", [&](const std::string& x) { prompt = x; }});
    p.add({"", "--prompt-ids", "IDS", "ids", [&](const std::string& x) { ids = parse_id_list("--prompt-ids", x); }});
    add_decode_flags(p, flags);
    p.add({"", "--json", "", "json", [&](const std::string&) { as_json = true; }});
    try {
        const std::vector<std::string> rest = p.parse(int(args.size()), argv.data(), 2);
        (void)rest;
        (void)p.help();
        if (flags.threads == 0) finish_decode_flags(flags, size % 2 == 0, 32);  // (a thread count would be applied)
        flags.gen.validate();
    } catch (const UsageError&) {
    } catch (const fdl::Error&) {
    }
    return 0;
}
