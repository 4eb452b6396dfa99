// The stop-token rule, in one place: a request's own stop tokens, else the model's end-of-sequence
// ids; the first one decided ends the answer (and is not part of its text).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/decode/generate.h"

namespace fdl {

inline std::vector<int32_t> stop_tokens_of(const ModelConfig& config, const GenerateOptions& opts) {
    return opts.stop_tokens.empty() ? config.eos_token_ids : opts.stop_tokens;
}

inline bool is_stop(const std::vector<int32_t>& stops, int32_t t) {
    return std::find(stops.begin(), stops.end(), t) != stops.end();
}

}  // namespace fdl
