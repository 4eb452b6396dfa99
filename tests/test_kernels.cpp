// BF16, INT8 and INT4 matrix kernels against a float64 reference (INT4 also against its portable
// loop, on whichever path this CPU or FASTDLLM_KERNELS gives), and whole-model agreement of the
// reduced-precision weight types with the float32 engine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/model/model.h"
#include "engine/io/safetensors.h"

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

// INT4 through Linear: the kernels compute exactly the product of the dequantised weights and the
// int8 activations (float64 reference of that, up to float rounding), and that product stays near
// the full-precision one (4-bit weights: a few percent). A shape int4 panels cannot hold is kept
// in int8.
TEST_P(KernelShapes, Int4MatchesReference) {
    auto [n, in, out] = GetParam();
    Problem p(n, in, out);
    Linear l;
    l.in = in;
    l.out = out;
    l.set(p.w, WeightType::INT4);
    ASSERT_EQ(l.type, packs_int4(in, out) ? WeightType::INT4 : WeightType::INT8);
    std::vector<float> y(size_t(n) * out);
    l.apply(p.x.data(), n, y.data());
    EXPECT_LT(p.rel_err(y), l.type == WeightType::INT4 ? 0.15 : 3e-2) << kernel_path_name();
    if (l.type != WeightType::INT4) return;
    std::vector<int8_t> xq(size_t(n) * in);
    std::vector<float> xs(n), wd(size_t(out) * in);
    quantize_rows_int8(p.x.data(), n, in, xq.data(), xs.data());
    for (int o = 0; o < out; o++) l.row(o, wd.data() + size_t(o) * in);
    double e = 0, mx = 0, se = 0, sr = 0;
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += double(xq[size_t(t) * in + k]) * wd[size_t(o) * in + k];
            s *= xs[size_t(t)];
            const double got = y[size_t(t) * out + o];
            e = std::max(e, std::fabs(got - s));
            mx = std::max(mx, std::fabs(s));
            const double full = p.ref[size_t(t) * out + o];
            se += (got - full) * (got - full), sr += full * full;
        }
    EXPECT_LT(e, 2e-5 * mx) << kernel_path_name();
    EXPECT_LT(std::sqrt(se / sr), 0.12) << "rms error against the float64 product";
}

// The SIMD INT4 kernel this CPU runs (or FASTDLLM_KERNELS forces) against the portable loop on
// the same packed weights and activations.
TEST_P(KernelShapes, Int4MatchesPortable) {
    auto [n, in, out] = GetParam();
    if (!packs_int4(in, out)) GTEST_SKIP() << "int4 panels need rows % 16 == 0 and inputs % 8 == 0";
    Problem p(n, in, out);
    std::vector<uint8_t> w(int4_bytes(in, out));
    for (int c = 0; c < out / kPanel; c++)
        quantize_int4_panel(p.w.data() + size_t(c) * kPanel * in, in, w.data() + size_t(c) * int4_panel_bytes(in));
    std::vector<int8_t> xq(size_t(n) * in);
    std::vector<float> xs(n);
    std::vector<int32_t> xg(size_t(n) * int4_groups(in));
    quantize_rows_int8(p.x.data(), n, in, xq.data(), xs.data());
    int4_group_sums(xq.data(), n, in, xg.data());
    std::vector<float> y(size_t(n) * out), want(size_t(n) * out);
    matmul_int4(xq.data(), xs.data(), xg.data(), n, w.data(), in, out, y.data());
    matmul_int4_portable(xq.data(), xs.data(), xg.data(), n, w.data(), in, out, want.data());
    double mx = 0;
    for (float v : want) mx = std::max(mx, double(std::fabs(v)));
    for (size_t i = 0; i < y.size(); i++) ASSERT_NEAR(y[i], want[i], 1e-5 * mx) << kernel_path_name() << " at " << i;
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
                                           std::make_tuple(33, 1536, 64), std::make_tuple(13, 688, 272),
                                           std::make_tuple(6, 2, 16),
                                           // the demo MLP: 43 panels, split unevenly between threads
                                           std::make_tuple(32, 256, 688),
                                           // int4: more tokens than a chunk's 64, a last group of 8
                                           // inputs; a single unit of 24 inputs
                                           std::make_tuple(70, 200, 48), std::make_tuple(2, 24, 16),
                                           // one token (int4's own kernel): 7 panels = 4 + 3, 2, 1
                                           std::make_tuple(1, 200, 112), std::make_tuple(1, 24, 32),
                                           std::make_tuple(1, 1544, 16)));

// The panel layout must change where weights live, not what is computed: packed and row-major
// kernels agree (up to float summation order), and row() (the tied embedding lookup) reads the
// packed weights back exactly. 80 outputs = one tile of 4 panels + one single panel; 7 tokens =
// one group of 6 + 1.
TEST(PackedLayout, SameResultsAsRowMajor) {
    const int n = 7, in = 192, out = 80;
    Problem p(n, in, out);
    if (!packs_f32(in, out) || !packs_bf16(in, out) || !packs_int8(in, out))
        GTEST_SKIP() << "no AVX-512 kernels here: " << kernel_path_name();
    auto expect_close = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
        double mx = 0;
        for (float v : a) mx = std::max(mx, double(std::fabs(v)));
        for (size_t i = 0; i < a.size(); i++) ASSERT_NEAR(a[i], b[i], 1e-5 * mx) << what << " at " << i;
    };
    std::vector<float> wfp = p.w;
    pack_f32(wfp.data(), in, out);
    std::vector<float> yf0(size_t(n) * out), yf1(size_t(n) * out);
    ASSERT_TRUE(matmul_f32_small(p.x.data(), n, p.w.data(), in, out, yf0.data()));  // row-major AVX-512
    matmul_f32_packed(p.x.data(), n, wfp.data(), in, out, yf1.data());
    expect_close(yf0, yf1, "f32");

    std::vector<uint16_t> xb(size_t(n) * in), wb(size_t(out) * in);
    to_bf16(p.x.data(), xb.size(), xb.data());
    to_bf16(p.w.data(), wb.size(), wb.data());
    std::vector<uint16_t> wbp = wb;
    pack_bf16(wbp.data(), in, out);
    EXPECT_NE(wb, wbp);
    std::vector<float> y0(size_t(n) * out), y1(size_t(n) * out);
    matmul_bf16(xb.data(), n, wb.data(), in, out, y0.data(), false);
    matmul_bf16(xb.data(), n, wbp.data(), in, out, y1.data(), true);
    expect_close(y0, y1, "bf16");

    std::vector<int8_t> xq(size_t(n) * in), wq(size_t(out) * in);
    std::vector<float> xs(n), ws(out);
    quantize_rows_int8(p.x.data(), n, in, xq.data(), xs.data());
    quantize_rows_int8(p.w.data(), out, in, wq.data(), ws.data());
    std::vector<int32_t> wsum(out, 0);  // in is a multiple of 64: the same sums serve both layouts
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) wsum[size_t(o)] += wq[size_t(o) * in + k];
    std::vector<int8_t> wqp = wq;
    pack_int8(wqp.data(), in, out);
    matmul_int8(xq.data(), xs.data(), n, wq.data(), ws.data(), wsum.data(), in, out, y0.data(), false);
    matmul_int8(xq.data(), xs.data(), n, wqp.data(), ws.data(), wsum.data(), in, out, y1.data(), true);
    expect_close(y0, y1, "int8");

    for (WeightType t : {WeightType::F32, WeightType::BF16, WeightType::INT8}) {
        Linear l;
        l.in = in;
        l.out = out;
        l.set(p.w, t);
        EXPECT_TRUE(l.packed);
        std::vector<float> r(in);
        for (int o : {0, 15, 16, 63, 64, 79}) {
            l.row(o, r.data());
            for (int k = 0; k < in; k++) {
                const size_t i = size_t(o) * in + k;
                const float want = t == WeightType::F32    ? p.w[i]
                                   : t == WeightType::BF16 ? bf16_to_f32(wb[i])
                                                           : wq[i] * ws[o];
                ASSERT_EQ(r[size_t(k)], want) << weight_type_name(t) << " row " << o << " col " << k;
            }
        }
    }
}

// Loading BF16 weights packs them straight from the file's rows (any byte alignment) into the
// same bytes that converting them to float32 and back and packing in place gives, in the panel
// layout and row-major (a row count that is not a multiple of 16).
TEST(PackedLayout, Bf16FromRowsEqualsPackingInPlace) {
    for (const auto& [in, out] : {std::pair{192, 80}, std::pair{64, 40}}) {
        Problem p(1, in, out);
        std::vector<uint16_t> wb(size_t(out) * in);
        to_bf16(p.w.data(), wb.size(), wb.data());
        const bool panels = packs_bf16(in, out);
        std::vector<uint16_t> want = wb;
        if (panels) pack_bf16(want.data(), in, out);
        std::vector<uint8_t> file(wb.size() * 2 + 1);  // one byte in: rows at odd addresses
        std::memcpy(file.data() + 1, wb.data(), wb.size() * 2);
        std::vector<const uint8_t*> rows;
        for (int r = 0; r < out; r++) rows.push_back(file.data() + 1 + size_t(r) * in * 2);
        std::vector<uint16_t> got(wb.size());
        pack_bf16_rows(rows.data(), in, out, panels, got.data());
        EXPECT_EQ(got, want) << in << "x" << out << (panels ? " panels" : " row-major");
    }
}

// The vectorised exp inside SwiGLU and the attention softmax stays within a few float ulps of
// std::exp, including where exp over- or underflows; rows of the stacked [gate | up] layout
// (inter not a multiple of 16, so each row has a scalar tail) land in their own output rows.
TEST(Elementwise, SwigluRowsMatchesScalar) {
    std::vector<float> g;
    for (float v = -120.f; v <= 120.f; v += 0.37f) g.push_back(v);
    for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 88.f, -88.f, 89.f, -104.f}) g.push_back(v);
    const int rows = 3, inter = int(g.size() + rows - 1) / rows;
    ASSERT_NE(inter % 16, 0);
    g.resize(size_t(rows) * inter, 1.5f);
    std::vector<float> gu(size_t(rows) * 2 * inter), got(size_t(rows) * inter, -1.f);
    auto up = [](size_t i) { return 0.5f + float(i % 7); };
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < inter; j++) {
            gu[size_t(r) * 2 * inter + j] = g[size_t(r) * inter + j];
            gu[size_t(r) * 2 * inter + inter + j] = up(size_t(r) * inter + j);
        }
    swiglu_rows(gu.data(), rows, inter, got.data());
    for (size_t i = 0; i < g.size(); i++) {
        const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * up(i);
        EXPECT_NEAR(got[i], want, 4e-7 * std::fabs(want) + 1e-30) << "g = " << g[i] << " at " << i;
    }
}

// One attention row against a float64 softmax; lengths 1..40 cover the masked tail of 16 scores.
TEST(Elementwise, AttendRowMatchesReference) {
    std::mt19937 rng(7);
    std::normal_distribution<float> d(0, 1);
    for (int hd : {16, 64, 128}) {
        const int maxlen = 40;
        const size_t stride = size_t(hd) * 2;  // two KV heads side by side, like the cache rows
        std::vector<float> q(hd), K(maxlen * stride), V(maxlen * stride), s(maxlen), o(hd);
        for (auto& v : q) v = d(rng) * 2;
        for (auto& v : K) v = d(rng);
        for (auto& v : V) v = d(rng);
        for (int len = 1; len <= maxlen; len++) {
            const float scale = 1.0f / std::sqrt(float(hd));
            attend_row(q.data(), K.data() + hd, V.data() + hd, stride, len, hd, scale, s.data(), o.data());
            std::vector<double> p(len);
            double mx = -1e300, sum = 0;
            for (int j = 0; j < len; j++) {
                double dot = 0;
                for (int t = 0; t < hd; t++) dot += double(q[t]) * K[j * stride + hd + t];
                p[j] = dot * scale;
                mx = std::max(mx, p[j]);
            }
            for (int j = 0; j < len; j++) sum += (p[j] = std::exp(p[j] - mx));
            for (int t = 0; t < hd; t++) {
                double want = 0;
                for (int j = 0; j < len; j++) want += p[j] / sum * V[j * stride + hd + t];
                ASSERT_NEAR(o[t], want, 2e-5) << "hd " << hd << " len " << len << " t " << t;
            }
        }
    }
}

// Sixteen rows at a time against the same keys, each with its own key limit (as causal and
// block-causal masks give), across the 256-key chunks of the online softmax; float64 reference.
TEST(Elementwise, AttendRows16MatchesReference) {
    std::mt19937 rng(11);
    std::normal_distribution<float> d(0, 1);
    for (int hd : {16, 40, 64, 128}) {  // 40: not a multiple of 16, the per-row fallback
        const int maxlen = 600;
        const size_t stride = size_t(hd) * 3;  // three KV heads side by side; the middle one is used
        std::vector<float> K(maxlen * stride), V(maxlen * stride), Q(16 * size_t(hd)), O(16 * size_t(hd)), s(maxlen);
        for (auto& v : K) v = d(rng);
        for (auto& v : V) v = d(rng);
        for (auto& v : Q) v = d(rng) * 2;
        // Static tables, not initializer lists: with -march=native the compiler copies a stack
        // initializer list with 64-byte aligned moves, which AddressSanitizer's fake stack breaks.
        static const int c0[] = {1}, c1[] = {7, 7}, c2[] = {600, 600, 600},
                         c3[] = {3, 256, 257, 600, 1, 255, 512, 513, 40, 41, 42, 43, 44, 45, 46, 47},
                         c4[] = {33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48}, c5[] = {300, 2, 300, 2, 300};
        static const int* const tabs[] = {c0, c1, c2, c3, c4, c5};
        static const size_t lens[] = {std::size(c0), std::size(c1), std::size(c2), std::size(c3), std::size(c4), std::size(c5)};
        std::vector<std::vector<int>> cases;
        for (size_t c = 0; c < std::size(tabs); c++) cases.emplace_back(tabs[c], tabs[c] + lens[c]);
        for (const auto& lims : cases) {
            const int nr = int(lims.size());
            const float* q[16];
            float* o[16];
            for (int r = 0; r < nr; r++) {
                q[r] = Q.data() + size_t(r) * hd;
                o[r] = O.data() + size_t(r) * hd;
            }
            std::fill(O.begin(), O.end(), std::nanf(""));
            const float scale = 1.0f / std::sqrt(float(hd));
            attend_rows16(q, o, lims.data(), nr, K.data() + hd, V.data() + hd, stride, hd, scale, s.data());
            for (int r = 0; r < nr; r++) {
                const int len = lims[size_t(r)];
                std::vector<double> p(len);
                double mx = -1e300, sum = 0;
                for (int j = 0; j < len; j++) {
                    double dot = 0;
                    for (int t = 0; t < hd; t++) dot += double(q[r][t]) * K[j * stride + hd + t];
                    mx = std::max(mx, p[j] = dot * scale);
                }
                for (int j = 0; j < len; j++) sum += (p[j] = std::exp(p[j] - mx));
                for (int t = 0; t < hd; t++) {
                    double want = 0;
                    for (int j = 0; j < len; j++) want += p[j] / sum * V[j * stride + hd + t];
                    ASSERT_NEAR(o[r][t], want, 2e-5) << "hd " << hd << " rows " << nr << " row " << r << " len " << len;
                }
            }
        }
    }
}

// The INT4 panel layout as kernels.h describes it, read back byte by byte: units of 64 inputs,
// each 64-byte block of codes holding rows' inputs i (low nibble) and 4 + i (high nibble) at byte
// 4r + i, then the unit's 32 float16 scales. Every weight is (q - 8) * d with q the nearest code
// for d (a value beyond the codes' range takes the end code), the largest weight of a group is
// within half a step, and row() gives the same values.
TEST(WeightTypes, Int4LayoutAndRounding) {
    for (int in : {8, 40, 64, 96, 200}) {
        Problem p(1, in, 32);
        p.w[5] = 0.f, p.w[size_t(in) + 3] = 1.0f;  // an outlier in row 1
        for (int k = 0; k < std::min(in, 32); k++) p.w[size_t(2) * in + k] = 0.f;  // an all-zero group
        Linear l;
        l.in = in;
        l.out = 32;
        l.set(p.w, WeightType::INT4);
        ASSERT_EQ(l.type, WeightType::INT4);
        ASSERT_EQ(l.w4.size(), size_t(2) * (size_t(in) * 8 + (in + 63) / 64 * 64));
        std::vector<float> row(in);
        for (int r = 0; r < 32; r++) {
            const uint8_t* panel = l.w4.data() + size_t(r / 16) * int4_panel_bytes(in);
            l.row(r, row.data());
            for (int g = 0; g * 32 < in; g++) {
                const int u = g / 2, k0 = 64 * u, ui = std::min(64, in - k0);
                const uint8_t* unit = panel + size_t(u) * (64 * 8 + 64);
                uint16_t h;
                std::memcpy(&h, unit + size_t(ui) * 8 + (g % 2) * 32 + 2 * (r % 16), 2);
                const float d = f16_to_f32(h);
                for (int k = 32 * g; k < std::min(in, 32 * g + 32); k++) {
                    const int j = k - k0, b = j / 8, i = j % 8;
                    const uint8_t byte = unit[size_t(b) * 64 + 4 * (r % 16) + i % 4];
                    const int q = i < 4 ? byte & 15 : byte >> 4;
                    const float v = p.w[size_t(r) * in + k], deq = float(q - 8) * d;
                    ASSERT_EQ(row[size_t(k)], deq) << "in " << in << " row " << r << " input " << k;
                    if (q > 0 && q < 15) {
                        ASSERT_LE(std::fabs(v - deq), 0.5 * std::fabs(d) * 1.0001 + 1e-7) << in << " " << r << " " << k;
                    }
                }
            }
        }
        l.row(1, row.data());
        EXPECT_NEAR(row[3], 1.0f, 1.0f / 16) << "the outlier within half a step of its group";
        l.row(2, row.data());
        for (int k = 0; k < std::min(in, 32); k++) EXPECT_EQ(row[size_t(k)], 0.f);
    }
}

// Quantising from a checkpoint's rows (BF16, F16, F32, any alignment) gives the bytes Linear::set
// gives for the same values as float32: INT4 panels, INT8 packed and row-major (lookup only).
TEST(WeightTypes, QuantizedFromRowsEqualsSet) {
    const int in = 192, out = 48;
    Problem p(1, in, out);
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
        const size_t es = dt == DType::F32 ? 4 : 2;
        std::vector<uint8_t> file(size_t(out) * in * es + 1);
        std::vector<float> exact(size_t(out) * in);
        for (size_t i = 0; i < exact.size(); i++) {
            uint8_t* dst = file.data() + 1 + i * es;
            if (dt == DType::F32) {
                std::memcpy(dst, &p.w[i], 4);
                exact[i] = p.w[i];
            } else {
                const uint16_t h = dt == DType::BF16 ? f32_to_bf16(p.w[i]) : f32_to_f16(p.w[i]);
                std::memcpy(dst, &h, 2);
                exact[i] = dt == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
            }
        }
        std::vector<const uint8_t*> rows;
        for (int r = 0; r < out; r++) rows.push_back(file.data() + 1 + size_t(r) * in * es);
        for (WeightType t : {WeightType::INT4, WeightType::INT8}) {
            for (bool pack : {true, false}) {
                if (t == WeightType::INT4 && !pack) continue;
                Linear a, b;
                a.in = b.in = in;
                a.out = b.out = out;
                a.set(exact, t);
                b.set_quantized_rows(rows.data(), dt, t, pack);
                EXPECT_EQ(b.type, t);
                if (t == WeightType::INT4) {
                    EXPECT_EQ(a.w4, b.w4) << dtype_name(dt);
                    continue;
                }
                EXPECT_EQ(b.packed, pack && packs_int8(in, out));
                EXPECT_EQ(a.scale, b.scale) << dtype_name(dt);
                if (pack) {
                    EXPECT_EQ(a.w8, b.w8) << dtype_name(dt);
                    EXPECT_EQ(a.wsum, b.wsum);
                }
                std::vector<float> ra(in), rb(in);
                for (int r : {0, 17, 47}) {
                    a.row(r, ra.data());
                    b.row(r, rb.data());
                    EXPECT_EQ(ra, rb) << dtype_name(dt) << " row " << r << (pack ? " packed" : " row-major");
                }
            }
        }
    }
}

// Per-row int8 quantisation: scale = max|x| / 127 and round-to-nearest-even of x / scale, exactly
// (ties included: 0.5, 1.5, 2.5 must go to 0, 2, 2), whichever code path runs.
TEST(Elementwise, QuantizeRowsMatchesScalar) {
    const int n = 3, in = 37;
    std::vector<float> x(size_t(n) * in);
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0, 1);
    for (auto& v : x) v = d(rng);
    for (int k = 0; k < 8; k++) x[size_t(k)] = 0.5f + k;  // row 0: max 127 -> scale 1, exact ties
    x[20] = 127.f;
    for (int k = in; k < 2 * in; k++) x[size_t(k)] = 0.f;  // an all-zero row
    std::vector<int8_t> q(x.size());
    std::vector<float> sc(n);
    quantize_rows_int8(x.data(), n, in, q.data(), sc.data());
    for (int i = 0; i < n; i++) {
        float amax = 0;
        for (int k = 0; k < in; k++) amax = std::max(amax, std::fabs(x[size_t(i) * in + k]));
        const float s = amax > 0 ? amax / 127.f : 1.f;
        EXPECT_EQ(sc[size_t(i)], s);
        for (int k = 0; k < in; k++)
            ASSERT_EQ(q[size_t(i) * in + k], int8_t(std::nearbyint(x[size_t(i) * in + k] * (1.f / s)))) << i << "," << k;
    }
    EXPECT_EQ(q[0], 0);
    EXPECT_EQ(q[1], 2);
    EXPECT_EQ(q[2], 2);
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
    for (WeightType type : {WeightType::BF16, WeightType::INT8, WeightType::INT4}) {
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
        // Logits reach ~30 here; reduced precision may move them by a few percent of that (int4:
        // about a tenth).
        EXPECT_LT(e / mx, type == WeightType::INT4 ? 0.15 : 0.05) << weight_type_name(type);
    }
}
