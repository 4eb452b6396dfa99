// Checkpoint tensors -> ModelWeights (for Model::load), by the tensor names of the config's
// architecture entry (architecture.h).
#pragma once
#include <cstdint>
#include <functional>

#include "engine/io/safetensors.h"
#include "engine/model/model.h"

namespace fdl {

// Reads every weight of `c`'s shape from `st`, keeping matrices in `type`. First refuses a model
// that cannot fit in the free memory; calls `progress` (if set) after each tensor with the bytes
// read so far and the checkpoint's total. Throws fdl::Error naming the file and the tensor.
// The bytes load_weights keeps for `c` in `type` (Model::weight_bytes once loaded): what the
// memory check before loading asks for and the load progress line shows.
uint64_t planned_weight_bytes(const ModelConfig& c, WeightType type, bool bf16_file, bool has_lm_head);

ModelWeights load_weights(const SafeTensors& st, const ModelConfig& c, WeightType type,
                          const std::function<void(uint64_t done, uint64_t total)>& progress);

}  // namespace fdl
