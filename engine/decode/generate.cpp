// Request set-up shared by both decoders: option checks, names, dispatch.
#include "engine/decode/generate.h"

#include "engine/decode/decoder.h"
#include "engine/decode/speedup_bound.h"
#include "engine/io/error.h"

namespace fdl {

const char* step_kind_name(StepKind k) {
    switch (k) {
        case StepKind::Prefill: return "prefill";
        case StepKind::Block: return "block";
        case StepKind::SubBlock: return "subblock";
        case StepKind::Commit: return "commit";
        case StepKind::Decode: return "decode";
    }
    return "?";
}

const char* cache_mode_name(CacheMode m) {
    switch (m) {
        case CacheMode::None: return "none";
        case CacheMode::Prefix: return "prefix";
        case CacheMode::Dual: return "dual";
        case CacheMode::DualOverlap: return "dual-overlap";
    }
    return "?";
}

const char* unmask_order_name(UnmaskOrder u) { return u == UnmaskOrder::Prefix ? "prefix" : "confidence"; }

bool parse_unmask_order(const std::string& s, UnmaskOrder& out) {
    if (s == "confidence") out = UnmaskOrder::Confidence;
    else if (s == "prefix") out = UnmaskOrder::Prefix;
    else return false;
    return true;
}

bool parse_cache_mode(const std::string& s, CacheMode& out) {
    if (s == "none") out = CacheMode::None;
    else if (s == "prefix") out = CacheMode::Prefix;
    else if (s == "dual") out = CacheMode::Dual;
    else if (s == "dual-overlap") out = CacheMode::DualOverlap;
    else return false;
    return true;
}

void GenerateOptions::validate() const {
    if (max_new_tokens < 1) throw Error("max new tokens must be at least 1");
    if (sampling.temperature < 0) throw Error("temperature must be >= 0");
    if (!(sampling.top_p > 0 && sampling.top_p <= 1)) throw Error("top-p must be in (0, 1]");
    if (sampling.top_k < 0) throw Error("top-k must be >= 0");
    if (mode == DecodeMode::Diffusion) {
        if (block_size < 1 || block_size > 1024) throw Error("block size must be in [1, 1024]");
        if (sub_block_size < 1 || block_size % sub_block_size != 0)
            throw Error("sub-block size " + std::to_string(sub_block_size) + " must divide the block size " +
                        std::to_string(block_size));
        if (!(threshold >= 0 && threshold <= 1)) throw Error("threshold must be in [0, 1]");
        if (max_new_tokens < block_size)
            throw Error("max new tokens (" + std::to_string(max_new_tokens) + ") must be at least the block size (" +
                        std::to_string(block_size) + "): diffusion decodes whole blocks");
    }
}

int64_t max_prompt_tokens(const ModelConfig& config, const GenerateOptions& opts) {
    return int64_t(config.max_position_embeddings) - opts.max_new_tokens - 2 * int64_t(opts.block_size);
}

GenerateResult generate(Model& model, KVCache& cache, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                        const EventCallback& on_event, const std::atomic<bool>* cancel) {
    opts.validate();
    if (prompt.empty()) throw Error("the prompt is empty");
    const int vocab = model.config().vocab_size;
    for (int32_t t : prompt)
        if (t < 0 || t >= vocab)
            throw Error("prompt token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                        std::to_string(vocab - 1) + ")");
    if (int64_t(prompt.size()) > max_prompt_tokens(model.config(), opts))
        throw Error("prompt (" + std::to_string(prompt.size()) + " tokens) + max new tokens (" +
                    std::to_string(opts.max_new_tokens) + ") + 2 blocks of slack (" + std::to_string(2 * opts.block_size) +
                    ") exceed the model's context of " + std::to_string(model.config().max_position_embeddings) +
                    " positions");
    const ForwardGroupMember member(opts.group);  // the group waits for this sequence's passes until it ends
    // The speedup's bound for these settings: looked up, or timed first when asked for (alone:
    // never while other sequences share the passes).
    double bound = 0;
    if (opts.mode == DecodeMode::Diffusion) {
        const std::optional<PassCosts> pc = opts.time_pass_costs && !opts.group
                                                ? pass_costs(model, opts.block_size, opts.sub_block_size)
                                                : known_pass_costs(model, opts.block_size, opts.sub_block_size);
        if (pc) bound = best_case_speedup(*pc, opts.cache);
    }
    if (bound <= 0) return decoder_for(opts.mode).run(model, cache, prompt, opts, on_event, cancel);
    // The bound goes into the final statistics: the Finished event's and the result's.
    const EventCallback with_bound = [&](const DecodeEvent& ev) {
        if (ev.type != DecodeEvent::Type::Finished) return on_event(ev);
        DecodeEvent last = ev;
        last.stats.best_case_speedup = bound;
        on_event(last);
    };
    GenerateResult r = decoder_for(opts.mode).run(model, cache, prompt, opts, on_event ? with_bound : on_event, cancel);
    r.stats.best_case_speedup = bound;
    return r;
}

}  // namespace fdl
