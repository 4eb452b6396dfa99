// Writes a random-weight model folder in the file layout of the shape's architecture entry
// (architecture.h: tensor names, config keys; for the built-ins, the published Qwen2.5 /
// Fast-dLLM v2 layout): config.json, BF16/F16/F32 safetensors, sharded with an index above a size
// limit. Used by `fastdllm mkmodel` for speed benchmarks at real shapes and by tests of the loader.
#pragma once
#include <cstdint>
#include <string>

#include "engine/model/model_config.h"

namespace fdl {

struct RandomModelSpec {
    ModelConfig shape;            // hidden_size, layers, heads, ... and the architecture (AR or dLLM)
    std::string dtype = "bf16";   // bf16 | f16 | f32
    uint64_t seed = 1;
    uint64_t shard_bytes = 2ull << 30;  // start a new shard past this size
    std::string tokenizer_json;   // copied into the folder when not empty
    int32_t mask_token_id = -1;   // the architecture's mask token, written to added_tokens.json when >= 0
};

// Shapes of the published models: "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b". Returns false
// for an unknown name.
bool published_shape(const std::string& name, bool diffusion, ModelConfig& out);

// Writes the folder (created if missing). Returns the bytes of weights written.
uint64_t write_random_model(const std::string& dir, const RandomModelSpec& spec);

}  // namespace fdl
