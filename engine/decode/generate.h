// One decoding request: its options, its result, and generate(), which checks the request and
// runs the decoder its mode names (decoder.h): autoregressive (one token per pass) or Fast-dLLM
// v2 block diffusion (docs/design.md). Every decoder takes a prompt, reuses whatever prefix of it
// the cache already holds, streams DecodeEvents, and stops between passes when *cancel becomes
// true.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/decode/decode_events.h"
#include "engine/model/kv_cache.h"
#include "engine/model/forward_group.h"
#include "engine/model/model.h"
#include "engine/decode/sampler.h"

namespace fdl {

// Dual is the paper's DualCache. DualOverlap is ours (not in the paper): when a sub-block's first
// cell is still masked it runs the previous sub-block and this one (2S tokens) against the block's
// cached K/V instead of the whole block, so only a block's first pass is a full one.
enum class CacheMode { None, Prefix, Dual, DualOverlap };
// Which masked cells of the sub-block a diffusion step decides. Confidence is the paper's rule:
// every cell above the threshold, wherever it is, and always the single most confident one.
// Prefix is ours: the run of cells above the threshold starting at the leftmost masked cell, and
// always that cell, so a sub-block fills left to right (an answer's end, often the most
// confident cell, cannot be fixed before the cells in front of it).
enum class UnmaskOrder { Confidence, Prefix };
const char* cache_mode_name(CacheMode m);
const char* decode_mode_name(DecodeMode m);
const char* unmask_order_name(UnmaskOrder u);
bool parse_cache_mode(const std::string& s, CacheMode& out);
bool parse_decode_mode(const std::string& s, DecodeMode& out);
bool parse_unmask_order(const std::string& s, UnmaskOrder& out);

struct GenerateOptions {
    DecodeMode mode = DecodeMode::Diffusion;
    int max_new_tokens = 256;
    int block_size = 32;
    int sub_block_size = 8;
    float threshold = 0.9f;
    CacheMode cache = CacheMode::Dual;
    UnmaskOrder unmask = UnmaskOrder::Confidence;
    SamplingOptions sampling;
    std::vector<int32_t> stop_tokens;  // empty: the model's eos ids
    bool record_steps = true;          // keep every step in the result (for --trace)
    // Runs the forward passes together with other sequences decoded at once (the chat service's
    // parallel slots); null: alone.
    ForwardGroup* group = nullptr;
    // Diffusion: time this model's pass costs before decoding when they are not known yet
    // (speedup_bound.h; once per model and settings, then stored), so that the result's
    // stats.best_case_speedup is set; compare mode asks for it. Never while in a group. Without
    // it the bound is set only when already known.
    bool time_pass_costs = false;

    // Throws fdl::Error with a one-line reason when the combination is invalid.
    void validate() const;
};

struct StepRecord {
    StepKind kind;
    std::vector<Unmasked> unmasked;
    int tokens = 0;     // prefill: tokens run
    int32_t next = -1;  // prefill/commit: the token appended for the next block (-1: none)
    int block_start = -1;
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids, cut after the first stop token
    bool stopped = false;         // ended with a stop token
    bool cancelled = false;
    DecodeStats stats;
    std::vector<StepRecord> steps;
};

// The longest prompt a request may have: the model's context less the new tokens and two blocks
// of slack (diffusion decodes whole blocks from a block boundary, so its last block can run past
// the answer).
int64_t max_prompt_tokens(const ModelConfig& config, const GenerateOptions& opts);

// Runs one request. `cache` may hold K/V of an earlier request: rows whose tokens match the
// prompt's start (and were made with the same mask) are reused, the rest recomputed.
GenerateResult generate(Model& model, KVCache& cache, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        const EventCallback& on_event = nullptr, const std::atomic<bool>* cancel = nullptr);

}  // namespace fdl
