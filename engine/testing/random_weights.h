// A model of a given shape with random weights, built in memory (Model::from_weights): speed
// benchmarks at the published shapes without writing gigabytes to disk, and tests. No tokenizer.
#pragma once
#include <cstdint>
#include <memory>

#include "engine/model/model.h"

namespace fdl {

// The same seed, shape and type give the same weights bit for bit. Which projections carry a
// bias comes from the shape's architecture entry (architecture_of). Throws fdl::Error for an
// unknown architecture or a shape the weights do not fit.
std::unique_ptr<Model> random_model(const ModelConfig& shape, WeightType type, uint64_t seed = 1);

}  // namespace fdl
