// BF16 and INT8 matrix kernels against a float64 reference, and whole-model agreement of the
// reduced-precision weight types with the float32 engine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/safetensors.h"

using namespace fdl;

namespace {

struct Problem {
    int n, in, out;
    std::vector<float> x, w;
    std::vector<double> ref;
    Problem(int n_, int in_, int out_) : n(n_), in(in_), out(out_) {
        std::mt19937 rng(42);
        std::normal_distribution<float> d(0, 1);
        x.resize(size_t(n) * in);
        w.resize(size_t(out) * in);
        for (auto& v : x) v = d(rng);
        for (auto& v : w) v = d(rng) * 0.05f;
        ref.assign(size_t(n) * out, 0);
        for (int t = 0; t < n; t++)
            for (int o = 0; o < out; o++) {
                double s = 0;
                for (int k = 0; k < in; k++) s += double(x[size_t(t) * in + k]) * w[size_t(o) * in + k];
                ref[size_t(t) * out + o] = s;
            }
    }
    // Largest error relative to the largest reference magnitude.
    double rel_err(const std::vector<float>& y) const {
        double e = 0, m = 0;
        for (size_t i = 0; i < y.size(); i++) {
            e = std::max(e, std::fabs(y[i] - ref[i]));
            m = std::max(m, std::fabs(ref[i]));
        }
        return e / m;
    }
};

class KernelShapes : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

}  // namespace

TEST_P(KernelShapes, Bf16MatchesReference) {
    auto [n, in, out] = GetParam();
    Problem p(n, in, out);
    Linear l;
    l.in = in;
    l.out = out;
    l.set(p.w, WeightType::BF16);
    std::vector<float> y(size_t(n) * out);
    l.apply(p.x.data(), n, y.data());
    EXPECT_LT(p.rel_err(y), 1e-2) << kernel_path_name();
}

TEST_P(KernelShapes, Int8MatchesReference) {
    auto [n, in, out] = GetParam();
    Problem p(n, in, out);
    Linear l;
    l.in = in;
    l.out = out;
    l.set(p.w, WeightType::INT8);
    std::vector<float> y(size_t(n) * out);
    l.apply(p.x.data(), n, y.data());
    EXPECT_LT(p.rel_err(y), 3e-2) << kernel_path_name();
}

TEST_P(KernelShapes, F32MatchesReference) {
    auto [n, in, out] = GetParam();
    Problem p(n, in, out);
    Linear l;
    l.in = in;
    l.out = out;
    l.set(p.w, WeightType::F32);
    std::vector<float> y(size_t(n) * out);
    l.apply(p.x.data(), n, y.data());
    EXPECT_LT(p.rel_err(y), 1e-5);
}

// Token counts of AR (1), sub-block (8), block (32) passes and odd remainders.
INSTANTIATE_TEST_SUITE_P(Shapes, KernelShapes,
                         ::testing::Values(std::make_tuple(1, 64, 64), std::make_tuple(8, 256, 96),
                                           std::make_tuple(32, 512, 130), std::make_tuple(3, 100, 7),
                                           std::make_tuple(33, 1536, 64)));

TEST(WeightTypes, TinyModelLogitsStayClose) {
    SafeTensors ex = SafeTensors::open_file(FIXTURES_DIR "/tiny/expected.safetensors");
    const TensorView& ids64 = ex.get("ids");
    std::vector<int32_t> ids(48);
    for (int i = 0; i < 48; i++) {
        int64_t v;
        std::memcpy(&v, ids64.data + 8 * i, 8);
        ids[size_t(i)] = int32_t(v);
    }
    std::vector<float> want(size_t(48) * 396);
    to_f32(ex.get("block16.logits"), want.data());
    for (const char* type : {"bf16", "int8"}) {
        LoadOptions o;
        o.weight_type = type;
        auto m = Model::load(FIXTURES_DIR "/tiny/model", o);
        KVCache c = m->make_cache();
        c.reserve(48);
        std::vector<float> got(size_t(48) * 396);
        m->forward(c, {ids.data(), 48, 0, 48, AttnMask::BlockCausal, 16, 0, 48}, got.data());
        double e = 0, mx = 0;
        for (size_t i = 0; i < got.size(); i++) {
            e = std::max(e, double(std::fabs(got[i] - want[i])));
            mx = std::max(mx, double(std::fabs(want[i])));
        }
        // Logits reach ~30 here; reduced precision may move them by a few percent of that.
        EXPECT_LT(e / mx, 0.05) << type;
    }
}
