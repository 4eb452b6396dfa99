// Small helpers shared by the AR and diffusion decoders.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "engine/decode/generate.h"
#include "engine/decode/stop_tokens.h"
#include "engine/io/clock.h"

namespace fdl {

inline std::vector<int32_t> stop_tokens_of(const Model& model, const GenerateOptions& opts) {
    return stop_tokens_of(model.config(), opts);
}

// One forward pass, alone or with the other members of opts.group.
inline void forward_pass(Model& model, const GenerateOptions& opts, KVCache& cache, const Pass& p, float* logits) {
    if (opts.group) opts.group->forward(cache, p, logits);
    else model.forward(cache, p, logits);
}

// Length of the common start of the cached tokens and the prompt.
inline int common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) n++;
    return int(n);
}

// Ids at or above this have no token in the tokenizer (never drawn when sampling).
inline int32_t first_untokenized_id(const Model& model) {
    return model.has_tokenizer() ? model.tokenizer().size() : model.config().vocab_size;
}

}  // namespace fdl
