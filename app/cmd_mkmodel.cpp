// fastdllm mkmodel: write a random-weight model folder in a published shape (for benchmarks
// and loader tests; nothing is downloaded).
#include <iostream>

#include "app/commands.h"
#include "engine/testing/random_model.h"

namespace fdl::cli {

int cmd_mkmodel(int argc, char** argv, int first) {
    std::string shape = "qwen2.5-0.5b", dtype = "bf16", tokenizer;
    bool ar = false;
    uint64_t seed = 1, shard_mb = 2048;
    ArgParser p("mkmodel", "[--shape NAME] [--dtype bf16|f16|f32] [--ar] DIR");
    p.add({"", "--shape", "NAME", "qwen2.5-0.5b | qwen2.5-1.5b | qwen2.5-7b (default qwen2.5-0.5b)",
           [&](const std::string& v) { shape = v; }});
    p.add({"", "--dtype", "T", "bf16 | f16 | f32 (default bf16, as published)", [&](const std::string& v) { dtype = v; }});
    p.add({"", "--ar", "", "an AR model (Qwen2ForCausalLM) instead of a dLLM", [&](const std::string&) { ar = true; }});
    p.add({"", "--tokenizer", "FILE", "copy this tokenizer.json into the folder", [&](const std::string& v) { tokenizer = v; }});
    p.add({"", "--seed", "S", "random seed (default 1)", [&](const std::string& v) { seed = parse_u64("--seed", v); }});
    p.add({"", "--shard-mb", "MB", "start a new shard past this size (default 2048)",
           [&](const std::string& v) { shard_mb = parse_u64("--shard-mb", v); }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help();
        return 0;
    }
    if (rest.size() != 1) throw UsageError{"give the output folder"};
    RandomModelSpec spec;
    if (!published_shape(shape, !ar, spec.shape))
        throw UsageError{"--shape: unknown shape '" + shape + "' (qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b)"};
    spec.dtype = dtype;
    spec.seed = seed;
    spec.shard_bytes = shard_mb << 20;
    spec.tokenizer_json = tokenizer;
    if (!tokenizer.empty()) spec.mask_token_id = 151665;
    std::cerr << "writing " << spec.shape.describe() << " (" << dtype << ") to " << rest[0] << "...\n";
    const uint64_t bytes = write_random_model(rest[0], spec);
    std::cerr << "wrote " << bytes / 1e9 << " GB of weights\n";
    if (tokenizer.empty())  // bench needs only the weights; a prompt needs the tokenizer
        std::cerr << "no tokenizer.json written: `fastdllm bench -m " << rest[0]
                  << "` times it as it is; generate and chat need one too (--tokenizer FILE, for example the Qwen2.5 "
                     "tokenizer.json of a downloaded model or tests/fixtures/tokenizer-qwen2.5/tokenizer.json)\n";
    return 0;
}

}  // namespace fdl::cli
