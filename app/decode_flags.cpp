#include <climits>

#include "app/commands.h"
#include "engine/parallel/threads.h"

namespace fdl::cli {

void add_decode_flags(ArgParser& p, DecodeFlags& f) {
    GenerateOptions& g = f.gen;
    g.block_size = 0;  // 0 = the model's bd_size
    p.add({"-n", "--max-new-tokens", "N", "most tokens to generate (default 256; diffusion: whole blocks)",
           [&g](const std::string& v) { g.max_new_tokens = parse_int("--max-new-tokens", v, 1, 1 << 20); }});
    p.add({"", "--mode", "MODE", "ar | diffusion (default: diffusion for dLLMs, ar for AR models)",
           [&f](const std::string& v) {
               DecodeMode m;
               if (v == "compare") f.chat_mode = ChatMode::Compare;
               else if (parse_decode_mode(v, m)) f.decoder = m, f.chat_mode = ChatMode::Single;
               else throw UsageError{"--mode: expected ar or diffusion, got '" + v + "'"};
           }});
    p.add({"", "--block-size", "N", "diffusion block size (default: the model's bd_size, 32)",
           [&g](const std::string& v) { g.block_size = parse_int("--block-size", v, 1, 1024); }});
    p.add({"", "--sub-block-size", "N", "sub-block size; must divide the block size (default 8)",
           [&g](const std::string& v) { g.sub_block_size = parse_int("--sub-block-size", v, 1, 1024); }});
    p.add({"", "--threshold", "X", "unmask every cell more confident than X (default 0.9; 1 = one per step)",
           [&g](const std::string& v) { g.threshold = parse_float("--threshold", v, 0, 1); }});
    p.add({"", "--cache", "MODE", "none | prefix | dual | dual-overlap (default dual; dual-overlap: ours, not the paper's: a sub-block whose first cell is masked reruns the previous sub-block with it instead of the whole block)", [&g](const std::string& v) {
               if (!parse_cache_mode(v, g.cache)) throw UsageError{"--cache: expected none, prefix, dual or dual-overlap, got '" + v + "'"};
           }});
    p.add({"", "--unmask", "ORDER", "confidence | prefix (default confidence, the paper's: every cell above the threshold and always the most confident; prefix: ours: the cells above the threshold from the leftmost masked one, and always that one, so a sub-block fills left to right)", [&g](const std::string& v) {
               if (!parse_unmask_order(v, g.unmask)) throw UsageError{"--unmask: expected confidence or prefix, got '" + v + "'"};
           }});
    p.add({"", "--temp", "T", "sampling temperature (default 0 = greedy)",
           [&g](const std::string& v) { g.sampling.temperature = parse_float("--temp", v, 0, 100); }});
    p.add({"", "--top-p", "P", "nucleus sampling mass (default 1 = off)",
           [&g](const std::string& v) { g.sampling.top_p = parse_float("--top-p", v, 1e-6, 1); }});
    p.add({"", "--top-k", "K", "sample among the K most likely tokens (default 0 = off)",
           [&g](const std::string& v) { g.sampling.top_k = parse_int("--top-k", v, 0, INT_MAX); }});
    p.add({"", "--seed", "S", "random seed for sampling (default 0)",
           [&g](const std::string& v) { g.sampling.seed = parse_u64("--seed", v); }});
    p.add({"", "--dtype", "T", "weights in memory: auto (bf16 above 1M parameters, else f32) | f32 | bf16 | int8 | int4",
           [&f](const std::string& v) {
               if (!parse_weight_type(v, f.dtype))
                   throw UsageError{std::string("--dtype: expected ") + weight_type_choices() + ", got '" + v + "'"};
           }});
    p.add({"-t", "--threads", "N", "CPU threads (default: physical cores)",
           [&f](const std::string& v) { f.threads = parse_int("--threads", v, 1, 1024); }});
}

int finish_decode_flags(DecodeFlags& f, bool model_is_diffusion, int model_block_size) {
    if (f.chat_mode == ChatMode::Compare) f.gen.mode = DecodeMode::Diffusion;
    else f.gen.mode = f.decoder.value_or(model_is_diffusion ? DecodeMode::Diffusion : DecodeMode::AR);
    if (f.gen.block_size == 0) f.gen.block_size = model_block_size;
    if (f.gen.mode == DecodeMode::Diffusion && f.gen.block_size % f.gen.sub_block_size != 0)
        throw UsageError{"--sub-block-size " + std::to_string(f.gen.sub_block_size) + " must divide the block size " +
                         std::to_string(f.gen.block_size)};
    return set_threads(f.threads);
}

}  // namespace fdl::cli
