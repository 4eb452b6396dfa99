#include "engine/decode/sampler.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/kernels.h"

namespace fdl {

Sampler::Sampler(const SamplingOptions& opts, int vocab, int32_t banned, int32_t no_token_from)
    : opts_(opts), vocab_(vocab), banned_(banned), no_token_from_(no_token_from), rng_(opts.seed) {
    probs_.resize(size_t(vocab));
    idx_.resize(size_t(vocab));
}

Pick Sampler::pick(const float* logits) {
    const bool sampling = opts_.temperature > 0.0f;
    const int limit = sampling ? std::min(vocab_, no_token_from_) : vocab_;
    // Plain softmax over the allowed ids (the mask token excluded): [0, b0) and [b1, limit).
    const int b0 = banned_ >= 0 && banned_ < limit ? banned_ : limit;
    const int b1 = std::min(limit, b0 + 1);
    const float mx = std::max(max_value(logits, b0), max_value(logits + b1, limit - b1));
    if (!(mx > -INFINITY)) return {-1, 0.0f};  // every allowed logit NaN or -inf: no pick
    int best = -1;  // the first id holding the maximum
    for (int i = 0; i < limit && best < 0; i++)
        if (i != banned_ && logits[i] == mx) best = i;
    const double sum = exp_sum(logits, b0, mx) + exp_sum(logits + b1, limit - b1, mx);
    if (!sampling) return {best, float(1.0 / sum)};  // exp(mx - mx) / sum

    // Temperature distribution, then top-k and top-p filtering, then one draw.
    int n = 0;
    for (int i = 0; i < limit; i++)
        if (i != banned_) idx_[size_t(n++)] = i;
    auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b]; };
    int keep = n;
    if (opts_.top_k > 0 && opts_.top_k < n) {
        std::partial_sort(idx_.begin(), idx_.begin() + opts_.top_k, idx_.begin() + n, by_logit);
        keep = opts_.top_k;
    } else {
        std::sort(idx_.begin(), idx_.begin() + n, by_logit);
    }
    double tsum = 0;
    for (int r = 0; r < keep; r++) {
        probs_[size_t(r)] = float(std::exp((double(logits[idx_[size_t(r)]]) - mx) / opts_.temperature));
        tsum += probs_[size_t(r)];
    }
    if (opts_.top_p < 1.0f) {
        double cum = 0;
        int cut = keep;
        for (int r = 0; r < keep; r++) {
            cum += probs_[size_t(r)] / tsum;
            if (cum >= opts_.top_p) { cut = r + 1; break; }
        }
        keep = cut;
        tsum = 0;
        for (int r = 0; r < keep; r++) tsum += probs_[size_t(r)];
    }
    std::uniform_real_distribution<double> u(0.0, tsum);
    double x = u(rng_);
    int r = 0;
    for (; r < keep - 1; r++) {
        x -= probs_[size_t(r)];
        if (x <= 0) break;
    }
    const int32_t tok = idx_[size_t(r)];
    return {tok, float(std::exp(double(logits[tok]) - mx) / sum)};
}

}  // namespace fdl
