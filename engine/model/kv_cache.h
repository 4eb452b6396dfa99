// Key/value cache: one buffer per layer with a row per absolute position.
// Row p holds the K (and V) of the token at position p, so "attend to rows [0, n)" is all an
// attention call needs. The block-level prefix cache, the DualCache of the current block and
// the AR cache are all ranges of this one buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fdl {

struct KVCache {
    int num_layers = 0;
    int kv_dim = 0;     // num_kv_heads * head_dim
    int capacity = 0;   // positions
    std::vector<float> k, v;  // [layer][capacity][kv_dim]

    // Tokens whose K/V rows [0, tokens.size()) are valid and reusable by the next request,
    // and the attention mask they were computed with (0 = causal, B > 0 = block-causal of B).
    std::vector<int32_t> tokens;
    int mask_block = 0;

    void init(int layers, int kv_dim_) { num_layers = layers; kv_dim = kv_dim_; }
    // Grows the buffer to hold `positions` rows (keeps the contents). Throws on absurd sizes.
    void reserve(int positions);
    size_t bytes_for(int positions) const { return size_t(2) * num_layers * positions * kv_dim * sizeof(float); }
    float* k_row(int layer, int pos) { return k.data() + (size_t(layer) * capacity + pos) * kv_dim; }
    float* v_row(int layer, int pos) { return v.data() + (size_t(layer) * capacity + pos) * kv_dim; }
    void clear() { tokens.clear(); }
};

}  // namespace fdl
