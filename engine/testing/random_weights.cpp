#include "engine/testing/random_weights.h"

#include <vector>

#include "engine/model/architecture.h"

namespace fdl {

namespace {

// splitmix64 draws, uniform in [-scale, scale). The draws go to the tensors in a fixed order
// (random_model), so a seed names one model.
struct Draws {
    uint64_t state;
    std::vector<float> fill(size_t n, float scale) {
        std::vector<float> v(n);
        for (auto& x : v) {
            uint64_t z = (state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            x = scale * (float((z ^ (z >> 31)) >> 40) * (2.0f / 16777216.0f) - 1.0f);
        }
        return v;
    }
    // Passes over n draws as fill(n, ...) would, without making them.
    void skip(size_t n) { state += uint64_t(n) * 0x9e3779b97f4a7c15ull; }
};

constexpr float kWeight = 0.035f, kBias = 0.003f;

// A matrix stacked from projections of `outs` rows (LayerWeights): its weights, then one bias
// per part, zero for the parts without one (none when no part has one).
void stacked(Draws& d, Linear& l, int in, const std::vector<std::pair<int, bool>>& parts, WeightType type) {
    l.in = in;
    l.out = 0;
    bool bias = false;
    for (const auto& [rows, has_bias] : parts) {
        l.out += rows;
        bias = bias || has_bias;
    }
    l.set(d.fill(size_t(in) * size_t(l.out), kWeight), type);
    l.b.clear();
    if (!bias) return;
    for (const auto& [rows, has_bias] : parts) {
        const std::vector<float> b = has_bias ? d.fill(size_t(rows), kBias) : std::vector<float>(size_t(rows), 0.0f);
        l.b.insert(l.b.end(), b.begin(), b.end());
    }
}

}  // namespace

std::unique_ptr<Model> random_model(const ModelConfig& shape, WeightType type, uint64_t seed) {
    const ModelConfig& c = shape;
    const TensorNames& t = architecture_of(c).tensors;
    auto has = [](const ProjectionNames& p) { return !p.bias.empty(); };
    Draws d{seed};
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim, I = c.intermediate_size;
    ModelWeights w;
    if (c.tie_word_embeddings) {
        stacked(d, w.embed, H, {{c.vocab_size, false}}, type);
    } else {
        // The embedding is only looked up by rows, so kept in float32 (as Model::load keeps a
        // float32 file's); it takes the second block of vocab x hidden draws, the lm_head the third.
        d.skip(size_t(H) * size_t(c.vocab_size));
        w.embed.in = H;
        w.embed.out = c.vocab_size;
        w.embed.set(d.fill(size_t(H) * size_t(c.vocab_size), kWeight), WeightType::F32);
        w.lm_head.emplace();
        stacked(d, *w.lm_head, H, {{c.vocab_size, false}}, type);
    }
    w.layers.resize(size_t(c.num_layers));
    for (LayerWeights& L : w.layers) {
        L.attn_norm.assign(size_t(H), 1.0f);
        L.mlp_norm.assign(size_t(H), 1.0f);
        stacked(d, L.qkv, H, {{Q, has(t.q)}, {KV, has(t.k)}, {KV, has(t.v)}}, type);
        stacked(d, L.o, Q, {{H, has(t.o)}}, type);
        stacked(d, L.gate_up, H, {{I, has(t.gate)}, {I, has(t.up)}}, type);
        stacked(d, L.down, I, {{H, has(t.down)}}, type);
    }
    w.final_norm.assign(size_t(H), 1.0f);
    return Model::from_weights(shape, std::move(w));
}

}  // namespace fdl
