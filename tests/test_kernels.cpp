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

// The interleaved 4-row layout must change where weights live, not what is computed: packed and
// row-major kernels give identical floats, and row() (the tied embedding lookup) reads it back.
TEST(PackedLayout, SameResultsAsRowMajor) {
    const int n = 5, in = 192, out = 12;
    Problem p(n, in, out);
    if (!packs_bf16(in, out) || !packs_int8(in, out)) GTEST_SKIP() << "no AVX-512 kernels here: " << kernel_path_name();
    std::vector<uint16_t> xb(size_t(n) * in), wb(size_t(out) * in);
    to_bf16(p.x.data(), xb.size(), xb.data());
    to_bf16(p.w.data(), wb.size(), wb.data());
    std::vector<uint16_t> wbp = wb;
    pack_bf16(wbp.data(), in, out);
    EXPECT_NE(wb, wbp);
    std::vector<float> y0(size_t(n) * out), y1(size_t(n) * out);
    matmul_bf16(xb.data(), n, wb.data(), in, out, y0.data(), false);
    matmul_bf16(xb.data(), n, wbp.data(), in, out, y1.data(), true);
    EXPECT_EQ(y0, y1);

    std::vector<int8_t> xq(size_t(n) * in), wq(size_t(out) * in);
    std::vector<float> xs(n), ws(out);
    quantize_rows_int8(p.x.data(), n, in, xq.data(), xs.data());
    quantize_rows_int8(p.w.data(), out, in, wq.data(), ws.data());
    std::vector<int32_t> wsum(out, 0);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) wsum[size_t(o)] += wq[size_t(o) * in + k];
    std::vector<int8_t> wqp = wq;
    pack_int8(wqp.data(), in, out);
    matmul_int8(xq.data(), xs.data(), n, wq.data(), ws.data(), wsum.data(), in, out, y0.data(), false);
    matmul_int8(xq.data(), xs.data(), n, wqp.data(), ws.data(), wsum.data(), in, out, y1.data(), true);
    EXPECT_EQ(y0, y1);

    for (WeightType t : {WeightType::BF16, WeightType::INT8}) {
        Linear l;
        l.in = in;
        l.out = out;
        l.set(p.w, t);
        EXPECT_TRUE(l.packed);
        std::vector<float> r(in);
        for (int o : {0, 3, 4, 11}) {
            l.row(o, r.data());
            for (int k = 0; k < in; k++) {
                const float want = t == WeightType::BF16 ? bf16_to_f32(wb[size_t(o) * in + k]) : wq[size_t(o) * in + k] * ws[o];
                ASSERT_EQ(r[size_t(k)], want) << weight_type_name(t) << " row " << o << " col " << k;
            }
        }
    }
}

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
