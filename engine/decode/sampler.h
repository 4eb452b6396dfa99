// Picks a token from one row of logits: greedy, or temperature / top-k / top-p with a seed.
// The mask token is never picked. The confidence is the plain softmax probability of the
// picked token (never a temperature-sharpened one, which would flood threshold commits).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace fdl {

struct SamplingOptions {
    float temperature = 0.0f;  // 0 = greedy
    float top_p = 1.0f;
    int top_k = 0;             // 0 = off
    uint64_t seed = 0;
};

struct Pick {
    int32_t token;
    float confidence;
};

class Sampler {
public:
    // banned: ids never picked (the mask token). no_token_from: ids >= this have no token in the
    // tokenizer; they are never drawn when sampling (greedy keeps the reference behaviour: a
    // trained model gives them no mass, and the fixtures' reference argmax is over the full vocab).
    Sampler(const SamplingOptions& opts, int vocab, int32_t banned, int32_t no_token_from);
    Pick pick(const float* logits);
    const SamplingOptions& options() const { return opts_; }

private:
    SamplingOptions opts_;
    int vocab_;
    int32_t banned_;
    int32_t no_token_from_;
    std::mt19937_64 rng_;
    std::vector<float> probs_;
    std::vector<int32_t> idx_;
};

}  // namespace fdl
