// The one stream of progress events every decoder emits. The TUI, --json --trace output,
// replay and the benchmarks all consume it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace fdl {

// Which decoder runs a request (the registry in decoder.h has one entry per mode).
enum class DecodeMode { AR, Diffusion };

// What a forward pass was for (NFE counts every one).
enum class StepKind {
    Prefill,   // the prompt's whole blocks (diffusion) or the whole prompt (AR)
    Block,     // diffusion: the whole current block, attending to the prefix cache
    SubBlock,  // diffusion: only the current sub-block, reusing the DualCache
    Commit,    // diffusion: the finished block once more, appended to the prefix cache
    Decode,    // AR: one token
};
const char* step_kind_name(StepKind k);

struct Unmasked {
    int32_t position;  // absolute position in the sequence
    int32_t token;
    float confidence;  // softmax probability of the chosen token
};

// Running statistics of one answer; every number is measured by the decoder.
struct DecodeStats {
    int prompt_tokens = 0;
    int reused_tokens = 0;      // prompt tokens whose K/V came from an earlier turn's cache
    int prefilled_tokens = 0;   // prompt tokens run in the prefill pass
    int generated_tokens = 0;   // decided so far (stop token included)
    int prefill_generated = 0;  // of those, decided by the prefill pass (0 or 1)
    int nfe = 0;                // forward passes, prefill and commits included
    int prefill_passes = 0, block_passes = 0, subblock_passes = 0, commit_passes = 0, decode_passes = 0;
    int prefix_cache_len = 0;   // rows of committed K/V (block-level cache / AR cache)
    std::map<int, int> passes_by_size;  // tokens in a pass -> passes of that size (to price a pass mix)
    double prefill_seconds = 0;
    double decode_seconds = 0;  // after the prefill
    // Diffusion: the most these settings can gain over AR decoding on this machine, from the
    // model's measured pass costs (speedup_bound.h); 0 when they are not known. Set at the end.
    double best_case_speedup = 0;
    // Decoding speed after the prefill: tokens decided by later passes per second, and per pass.
    int decoded_after_prefill() const { return generated_tokens - prefill_generated; }
    double tokens_per_second() const { return decode_seconds > 0 ? decoded_after_prefill() / decode_seconds : 0; }
    // Every generated token over the whole request, prefill included: the rate that compares AR
    // with diffusion (a diffusion prompt shorter than a block has no separate prefill, so its
    // decode time holds the prompt's processing, where AR's does not).
    double request_seconds() const { return prefill_seconds + decode_seconds; }
    double request_tokens_per_second() const { return request_seconds() > 0 ? generated_tokens / request_seconds() : 0; }
    double tokens_per_forward() const {
        const int passes = nfe - prefill_passes;
        return passes > 0 ? double(decoded_after_prefill()) / passes : 0;
    }
};

struct DecodeEvent {
    enum class Type { Started, BlockStarted, Step, Finished } type = Type::Started;
    DecodeMode decoder = DecodeMode::AR;  // which decoder made it
    StepKind step = StepKind::Prefill;  // Step: what the pass was
    int block_index = -1;               // 0-based generated block (diffusion), -1 for AR
    int block_start = 0;                // absolute position of the current block's first cell
    int block_size = 0;                 // 1 for AR
    int sub_block_size = 0;
    int prompt_len = 0;
    std::vector<Unmasked> unmasked;     // Step: tokens decided by this pass
    std::vector<int32_t> block;         // BlockStarted/Step: the current block (mask id where undecided)
    int32_t mask_token = -1;
    bool cancelled = false;             // Finished: stopped by the cancel flag
    bool stopped = false;               // Finished: the stop token ended the answer
    DecodeStats stats;
};

using EventCallback = std::function<void(const DecodeEvent&)>;

}  // namespace fdl
