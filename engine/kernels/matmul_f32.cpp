// F32 matrix products with AVX-512: the panel kernel (weights packed by pack_f32), and a
// row-major register tiling for passes of a few tokens. Other CPUs and other shapes use OpenBLAS
// (the caller's part).
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include "engine/io/error.h"

namespace fdl {

using namespace detail;

// ---- F32, panels ----
// The BF16 panel kernel (matmul_bf16.cpp) with one input per lane: fused multiply-adds of 16
// weight rows against a broadcast input, the same 4-panel x 6-token tile. Each output is one
// float sum over k in order.

template <int RP, int RT>
FDL_AVX512F static inline void f32_panel_tile(const float* w, const float* x, int in, int out, int o0, int t0, float* y) {
    __m512 acc[RP][RT];
    for (int p = 0; p < RP; p++)
        for (int t = 0; t < RT; t++) acc[p][t] = _mm512_setzero_ps();
    const float* wp = w + size_t(o0) * in;
    const size_t pstride = size_t(kPanel) * in;
    for (int k = 0; k < in; k++) {
        __m512 wv[RP];
        for (int p = 0; p < RP; p++) wv[p] = _mm512_loadu_ps(wp + p * pstride + size_t(k) * kPanel);
        for (int t = 0; t < RT; t++) {
            const __m512 xv = _mm512_set1_ps(x[size_t(t0 + t) * in + k]);
            for (int p = 0; p < RP; p++) acc[p][t] = _mm512_fmadd_ps(wv[p], xv, acc[p][t]);
        }
    }
    for (int t = 0; t < RT; t++)
        for (int p = 0; p < RP; p++) _mm512_storeu_ps(y + size_t(t0 + t) * out + o0 + p * kPanel, acc[p][t]);
}

template <int RP>
FDL_AVX512F static inline void f32_panel_tokens(const float* w, const float* x, int n, int in, int out, int o0, float* y) {
    int t0 = 0;
    for (; t0 + kTileTokens <= n; t0 += kTileTokens) f32_panel_tile<RP, kTileTokens>(w, x, in, out, o0, t0, y);
    switch (n - t0) {
        case 5: f32_panel_tile<RP, 5>(w, x, in, out, o0, t0, y); break;
        case 4: f32_panel_tile<RP, 4>(w, x, in, out, o0, t0, y); break;
        case 3: f32_panel_tile<RP, 3>(w, x, in, out, o0, t0, y); break;
        case 2: f32_panel_tile<RP, 2>(w, x, in, out, o0, t0, y); break;
        case 1: f32_panel_tile<RP, 1>(w, x, in, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512F static void f32_panel_range(const float* x, int n, const float* w, int in, int out, float* y, int p, int p1) {
    for (; p + kTilePanels <= p1; p += kTilePanels) f32_panel_tokens<kTilePanels>(w, x, n, in, out, p * kPanel, y);
    for (; p < p1; p++) f32_panel_tokens<1>(w, x, n, in, out, p * kPanel, y);
}

FDL_AVX512F static void matmul_f32_panels(const float* x, int n, const float* w, int in, int out, float* y) {
    for_panel_chunks(out, n, worth_threads(out, in, n), [&](int p0, int p1, int t0, int t1) {
        f32_panel_range(x + size_t(t0) * in, t1 - t0, w, in, out, y + size_t(t0) * out, p0, p1);
    });
}

void matmul_f32_packed(const float* x, int n, const float* w, int in, int out, float* y) {
    if (!packs_f32(in, out)) throw Error("internal: matmul_f32_packed on a layout this CPU does not pack");
    matmul_f32_panels(x, n, w, in, out, y);
}

// ---- F32, row-major, for small token counts ----
// Matrices the panel layout does not take (a row count that is not a multiple of 16): OpenBLAS is
// tuned for large GEMMs, and for passes of a few tokens this register tiling streams faster.

template <int RO, int RT>
FDL_AVX512F static inline void f32_tile(const float* w, const float* x, int in, int in16, int out, int o0, int t0, float* y) {
    __m512 acc[RO][RT];
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) acc[a][b] = _mm512_setzero_ps();
    for (int k = 0; k < in16; k += 16) {
        __m512 xv[RT];
        for (int b = 0; b < RT; b++) xv[b] = _mm512_loadu_ps(x + size_t(t0 + b) * in + k);
        for (int a = 0; a < RO; a++) {
            const __m512 wv = _mm512_loadu_ps(w + size_t(o0 + a) * in + k);
            for (int b = 0; b < RT; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
        }
    }
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) {
            float s = _mm512_reduce_add_ps(acc[a][b]);
            for (int k = in16; k < in; k++) s += w[size_t(o0 + a) * in + k] * x[size_t(t0 + b) * in + k];
            y[size_t(t0 + b) * out + o0 + a] = s;
        }
}

template <int RO>
FDL_AVX512F static inline void f32_rows(const float* w, const float* x, int n, int in, int in16, int out, int o0, float* y) {
    int t0 = 0;
    for (; t0 + 4 <= n; t0 += 4) f32_tile<RO, 4>(w, x, in, in16, out, o0, t0, y);
    switch (n - t0) {
        case 3: f32_tile<RO, 3>(w, x, in, in16, out, o0, t0, y); break;
        case 2: f32_tile<RO, 2>(w, x, in, in16, out, o0, t0, y); break;
        case 1: f32_tile<RO, 1>(w, x, in, in16, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512F static void matmul_f32_avx512(const float* x, int n, const float* w, int in, int out, float* y) {
    const int in16 = in / 16 * 16;
    const int out4 = out / 4 * 4;
    for_row_quads(out4, worth_threads(out, in, n), [&](int o0) { f32_rows<4>(w, x, n, in, in16, out, o0, y); });
    for (int o0 = out4; o0 < out; o0++) f32_rows<1>(w, x, n, in, in16, out, o0, y);
}

bool matmul_f32_small(const float* x, int n, const float* w, int in, int out, float* y) {
    if (!cpu_features().avx512f || n > 8) return false;  // OpenBLAS wins from ~16 tokens on
    matmul_f32_avx512(x, n, w, in, out, y);
    return true;
}

}  // namespace fdl
