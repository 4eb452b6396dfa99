// The sampler's greedy pick and confidence against a plain float64 softmax written here, and the
// vectorised max / exp-sum it uses against scalar loops (AVX-512 and, forced, the other paths).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/decode/sampler.h"

using namespace fdl;

namespace {

std::vector<float> random_logits(int n, uint32_t seed, float sd = 3.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng);
    return v;
}

// Argmax (first on ties) and its softmax probability over ids != banned, in float64.
std::pair<int, double> reference(const std::vector<float>& l, int banned) {
    int best = -1;
    for (int i = 0; i < int(l.size()); i++)
        if (i != banned && (best < 0 || l[size_t(i)] > l[size_t(best)])) best = i;
    double sum = 0;
    for (int i = 0; i < int(l.size()); i++)
        if (i != banned) sum += std::exp(double(l[size_t(i)]) - l[size_t(best)]);
    return {best, 1.0 / sum};
}

}  // namespace

TEST(Sampler, GreedyMatchesFloat64Softmax) {
    for (int vocab : {5, 17, 4096, 151936}) {
        for (uint32_t seed = 1; seed <= 20; seed++) {
            for (float sd : {0.3f, 3.0f, 30.0f}) {
                std::vector<float> l = random_logits(vocab, seed, sd);
                const int banned = vocab - 1 - int(seed % 3);
                if (seed % 4 == 0) l[size_t(banned)] = 1e9f;  // the banned id is never picked
                Sampler s({}, vocab, banned, vocab);
                const Pick p = s.pick(l.data());
                const auto want = reference(l, banned);
                EXPECT_EQ(p.token, want.first) << vocab << " " << seed;
                EXPECT_NEAR(p.confidence, want.second, 2e-6 * want.second + 1e-12) << vocab << " " << seed;
            }
        }
    }
}

TEST(Sampler, TiesGoToTheFirstIdAndConfidenceSplits) {
    std::vector<float> l(100, -5.0f);
    l[40] = l[70] = 2.0f;
    Sampler s({}, 100, 99, 100);
    const Pick p = s.pick(l.data());
    EXPECT_EQ(p.token, 40);
    EXPECT_NEAR(p.confidence, reference(l, 99).second, 1e-6);
    EXPECT_LT(p.confidence, 0.5f);
}

TEST(Sampler, NoFiniteLogitMeansNoPick) {
    std::vector<float> l(64, -INFINITY);
    Sampler s({}, 64, 3, 64);
    EXPECT_EQ(s.pick(l.data()).token, -1);
    std::fill(l.begin(), l.end(), std::nanf(""));
    EXPECT_EQ(s.pick(l.data()).token, -1);
    l[9] = 1.0f;  // one finite value among NaNs
    EXPECT_EQ(s.pick(l.data()).token, 9);
}

TEST(Sampler, SampledTokensAreAllowedAndSeeded) {
    const std::vector<float> l = random_logits(4096, 7, 1.0f);
    // Sampling never draws ids without a token (>= 4000 here); the confidence is the plain
    // softmax probability over the ids it may draw.
    const std::vector<float> allowed(l.begin(), l.begin() + 4000);
    const auto top = reference(allowed, -1);
    SamplingOptions o;
    o.temperature = 0.8f;
    o.top_k = 50;
    o.seed = 42;
    Sampler a(o, 4096, 4095, 4000), b(o, 4096, 4095, 4000);
    for (int i = 0; i < 200; i++) {
        const Pick pa = a.pick(l.data()), pb = b.pick(l.data());
        EXPECT_EQ(pa.token, pb.token);
        ASSERT_TRUE(pa.token >= 0 && pa.token < 4000);
        const double want = std::exp(double(l[size_t(pa.token)]) - l[size_t(top.first)]) * top.second;
        EXPECT_NEAR(pa.confidence, want, 2e-6 * want);
    }
}

TEST(Sampler, MaxAndExpSumMatchScalar) {
    for (int n : {0, 1, 15, 16, 17, 100, 4096, 4099}) {
        std::vector<float> x = random_logits(n, uint32_t(n) + 3);
        if (n > 20) x[10] = std::nanf("");  // NaNs are skipped by the max
        float m = -INFINITY;
        for (float v : x) m = std::max(m, v);
        EXPECT_EQ(max_value(x.data(), n), m) << n;
        if (n > 20) x[10] = 0.0f;
        double s = 0;
        for (float v : x) s += std::exp(double(v) - m);
        EXPECT_NEAR(exp_sum(x.data(), n, m), s, 1e-6 * s + 1e-300) << n;
    }
}
