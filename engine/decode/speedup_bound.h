// The best case block diffusion can reach against AR decoding on this machine, from the measured
// cost of its forward passes (docs/design.md, "The speedup's bound").
//
// AR decodes a block of B tokens with B one-token passes. Block diffusion needs, at the very
// least, with every cell of a sub-block decided by the sub-block's first pass:
//   none, prefix, dual:  B/S whole-block passes (each sub-block's first pass runs the whole block:
//                        its first cell is predicted by a row outside it) and the commit,
//                        (B/S + 1) passes of B tokens;
//   dual-overlap:        the block's first pass and the commit (2 passes of B tokens) and B/S - 1
//                        passes of 2S tokens.
// The bound is the time of AR's passes over the time of those: B * t(1) / ((B/S + 1) * t(B)) for
// the DualCache. It depends on what a pass of B tokens costs against a pass of one, a property of
// the machine and the model's size: about 8x on a model whose weights sit in cache (the bound is
// then below 1), 2.4-4x on a 1.5B model whose one-token pass streams its weights from memory, and
// it rises toward B / (B/S + 1) = 6.4 where a pass of B tokens costs no more than a pass of one.
// For `none` the bound is prefix's (its passes also rerun the prompt: an optimistic bound).
#pragma once
#include <optional>

#include "engine/decode/generate.h"
#include "engine/model/model.h"

namespace fdl {

// Seconds per forward pass of 1, S, 2S and B tokens (medians), with B and S.
struct PassCosts {
    int block_size = 0, sub_block_size = 0;
    double one = 0, sub = 0, overlap = 0, block = 0;
};

// The bound for a cache mode (0 when the costs are missing).
double best_case_speedup(const PassCosts& c, CacheMode mode);

// Times passes of 1, S, 2S and B tokens on `model` with a cache of its own (64 cached positions;
// logits for up to S rows, as a sub-block pass asks), the sizes taking turns; medians of 3 to 21
// passes each, as many as fit in about a second and a half. Must not run while another thread
// uses the model.
PassCosts time_pass_costs(Model& model, int block_size, int sub_block_size);

// This model's pass costs at these settings on this machine, when known: timed earlier by this
// process, or stored in the user's data folder ($XDG_DATA_HOME/fastdllm/pass_costs.json, else
// ~/.local/share/fastdllm/), keyed by the model folder, the size and modification time of its
// weights file, the weight type, the thread count, the kernel path, B and S. A model without a
// folder (random weights) is never stored.
std::optional<PassCosts> known_pass_costs(const Model& model, int block_size, int sub_block_size);
// The same, timed now (time_pass_costs) and stored when not known.
PassCosts pass_costs(Model& model, int block_size, int sub_block_size);

}  // namespace fdl
