// BF16 matrix products (weights and activations rounded to bfloat16, float32 accumulation):
// AVX512-BF16 on row-major or panel-packed weights, AVX2+FMA, and a portable loop.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include <cstring>

namespace fdl {

using namespace detail;

static inline float bf16f(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// ---- AVX512-BF16, row-major ----

// Tiles of 4 weight rows x RT tokens (RT = 1..4, a compile-time constant so the accumulators
// stay in registers). Each block of 4 weight rows stays in L1 while every token group passes over
// it, so the weights stream from memory once per pass whatever the token count.
template <int RO, int RT>
FDL_AVX512_BF16 static inline void bf16_tile(const uint16_t* w, const uint16_t* x, int in, int in32, int out, int o0,
                                             int t0, float* y) {
    __m512 acc[RO][RT];
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) acc[a][b] = _mm512_setzero_ps();
    for (int k = 0; k < in32; k += 32) {
        __m512bh xv[RT];
        for (int b = 0; b < RT; b++) xv[b] = (__m512bh)_mm512_loadu_si512(x + size_t(t0 + b) * in + k);
        for (int a = 0; a < RO; a++) {
            const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + size_t(o0 + a) * in + k);
            for (int b = 0; b < RT; b++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], wv, xv[b]);
        }
    }
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) {
            float s = _mm512_reduce_add_ps(acc[a][b]);
            for (int k = in32; k < in; k++) s += bf16f(w[size_t(o0 + a) * in + k]) * bf16f(x[size_t(t0 + b) * in + k]);
            y[size_t(t0 + b) * out + o0 + a] = s;
        }
}

template <int RO>
FDL_AVX512_BF16 static inline void bf16_rows(const uint16_t* w, const uint16_t* x, int n, int in, int in32, int out, int o0,
                                             float* y) {
    int t0 = 0;
    for (; t0 + 4 <= n; t0 += 4) bf16_tile<RO, 4>(w, x, in, in32, out, o0, t0, y);
    switch (n - t0) {
        case 3: bf16_tile<RO, 3>(w, x, in, in32, out, o0, t0, y); break;
        case 2: bf16_tile<RO, 2>(w, x, in, in32, out, o0, t0, y); break;
        case 1: bf16_tile<RO, 1>(w, x, in, in32, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512_BF16 static void matmul_bf16_avx512(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y) {
    const int in32 = in / 32 * 32;
    const int out4 = out / 4 * 4;
    for_row_quads(out4, worth_threads(out, in, n), [&](int o0) { bf16_rows<4>(w, x, n, in, in32, out, o0, y); });
    for (int o0 = out4; o0 < out; o0++) bf16_rows<1>(w, x, n, in, in32, out, o0, y);
}

// ---- AVX512-BF16, panels ----

template <int RP, int RT>
FDL_AVX512_BF16 static inline void bf16_panel_tile(const uint16_t* w, const uint16_t* x, int in, int out, int o0, int t0,
                                                   float* y) {
    __m512 acc[RP][RT];
    for (int p = 0; p < RP; p++)
        for (int t = 0; t < RT; t++) acc[p][t] = _mm512_setzero_ps();
    const uint16_t* wp = w + size_t(o0) * in;
    const size_t pstride = size_t(kPanel) * in;  // elements per panel
    for (int k = 0; k < in; k += 2) {
        __m512bh wv[RP];
        for (int p = 0; p < RP; p++) wv[p] = (__m512bh)_mm512_loadu_si512(wp + p * pstride + size_t(k) * kPanel);
        for (int t = 0; t < RT; t++) {
            uint32_t pair;
            std::memcpy(&pair, x + size_t(t0 + t) * in + k, 4);
            const __m512bh xv = (__m512bh)_mm512_set1_epi32(int(pair));
            for (int p = 0; p < RP; p++) acc[p][t] = _mm512_dpbf16_ps(acc[p][t], wv[p], xv);
        }
    }
    for (int t = 0; t < RT; t++)
        for (int p = 0; p < RP; p++) _mm512_storeu_ps(y + size_t(t0 + t) * out + o0 + p * kPanel, acc[p][t]);
}

template <int RP>
FDL_AVX512_BF16 static inline void bf16_panel_tokens(const uint16_t* w, const uint16_t* x, int n, int in, int out, int o0,
                                                     float* y) {
    int t0 = 0;
    for (; t0 + kTileTokens <= n; t0 += kTileTokens) bf16_panel_tile<RP, kTileTokens>(w, x, in, out, o0, t0, y);
    switch (n - t0) {
        case 5: bf16_panel_tile<RP, 5>(w, x, in, out, o0, t0, y); break;
        case 4: bf16_panel_tile<RP, 4>(w, x, in, out, o0, t0, y); break;
        case 3: bf16_panel_tile<RP, 3>(w, x, in, out, o0, t0, y); break;
        case 2: bf16_panel_tile<RP, 2>(w, x, in, out, o0, t0, y); break;
        case 1: bf16_panel_tile<RP, 1>(w, x, in, out, o0, t0, y); break;
        default: break;
    }
}

// Panels [p, p1): whole tiles, then single panels.
FDL_AVX512_BF16 static void bf16_panel_range(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y, int p,
                                             int p1) {
    for (; p + kTilePanels <= p1; p += kTilePanels) bf16_panel_tokens<kTilePanels>(w, x, n, in, out, p * kPanel, y);
    for (; p < p1; p++) bf16_panel_tokens<1>(w, x, n, in, out, p * kPanel, y);
}

FDL_AVX512_BF16 static void matmul_bf16_panels(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y) {
    for_panel_chunks(out, n, worth_threads(out, in, n), [&](int p0, int p1, int t0, int t1) {
        bf16_panel_range(x + size_t(t0) * in, t1 - t0, w, in, out, y + size_t(t0) * out, p0, p1);
    });
}

// ---- AVX2 (row-major weights; CPUs without AVX-512) ----
// 4 weight rows x 1 token per tile; bf16 widened to float by a 16-bit shift, then FMA.

FDL_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

FDL_AVX2 static inline __m256 bf16x8(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}

// Rows [o0, o0 + 4) (fewer at the end) for every token.
FDL_AVX2 static void bf16_avx2_rows(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y, int o0) {
    const int in8 = in / 8 * 8;
    const int ro = std::min(4, out - o0);
    for (int t = 0; t < n; t++) {
        const uint16_t* xr = x + size_t(t) * in;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int k = 0; k < in8; k += 8) {
            const __m256 xv = bf16x8(xr + k);
            for (int a = 0; a < ro; a++) acc[a] = _mm256_fmadd_ps(bf16x8(w + size_t(o0 + a) * in + k), xv, acc[a]);
        }
        for (int a = 0; a < ro; a++) {
            float s = hsum256(acc[a]);
            for (int k = in8; k < in; k++) s += bf16f(w[size_t(o0 + a) * in + k]) * bf16f(xr[k]);
            y[size_t(t) * out + o0 + a] = s;
        }
    }
}

static void matmul_bf16_avx2(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y) {
    // The last group may hold fewer than 4 rows; the row function stops at `out`.
    for_row_quads((out + 3) / 4 * 4, worth_threads(out, in, n), [&](int o0) { bf16_avx2_rows(x, n, w, in, out, y, o0); });
}

// ---- Portable ----

static void matmul_bf16_portable(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y) {
    parallel_ranges(out, balanced_grain(out), worth_threads(out, in, n), [&](int o0, int o1, int) {
        for (int o = o0; o < o1; o++) {
            const uint16_t* wr = w + size_t(o) * in;
            for (int t = 0; t < n; t++) {
                const uint16_t* xr = x + size_t(t) * in;
                float s = 0;
                for (int k = 0; k < in; k++) s += bf16f(wr[k]) * bf16f(xr[k]);
                y[size_t(t) * out + o] = s;
            }
        }
    });
}

void matmul_bf16(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y, bool packed) {
    if (packed) matmul_bf16_panels(x, n, w, in, out, y);  // only ever packed when the CPU has AVX512-BF16
    else if (cpu_features().avx512bf16) matmul_bf16_avx512(x, n, w, in, out, y);
    else if (has_avx2_fma()) matmul_bf16_avx2(x, n, w, in, out, y);
    else matmul_bf16_portable(x, n, w, in, out, y);
}

}  // namespace fdl
