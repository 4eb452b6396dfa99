// INT8 matrix products (one float scale per weight row, activations quantised per token):
// AVX512-VNNI on row-major or panel-packed weights, AVX2, and a portable loop.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include <cstring>
#include <vector>

namespace fdl {

using namespace detail;

// ---- AVX512-VNNI, row-major ----

// VNNI multiplies unsigned by signed bytes: activations are shifted to u8 (q + 128) and the
// extra 128 * sum(w) is subtracted afterwards. Same tiling as BF16.
template <int RO, int RT>
FDL_AVX512_VNNI static inline void int8_tile(const int8_t* w, const uint8_t* xu, const int8_t* x, const float* xs,
                                             const float* ws, const int32_t* wsum, int in, int in64, int out, int o0,
                                             int t0, float* y) {
    __m512i acc[RO][RT];
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) acc[a][b] = _mm512_setzero_si512();
    for (int k = 0; k < in64; k += 64) {
        __m512i xv[RT];
        for (int b = 0; b < RT; b++) xv[b] = _mm512_loadu_si512(xu + size_t(t0 + b) * in + k);
        for (int a = 0; a < RO; a++) {
            const __m512i wv = _mm512_loadu_si512(w + size_t(o0 + a) * in + k);
            for (int b = 0; b < RT; b++) acc[a][b] = _mm512_dpbusd_epi32(acc[a][b], xv[b], wv);
        }
    }
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) {
            int32_t s = _mm512_reduce_add_epi32(acc[a][b]);
            // The vector part used x + 128 over [0, in64): take 128 * (that part's weight sum) back
            // off, then add the tail exactly.
            s -= 128 * wsum[o0 + a];
            for (int k = in64; k < in; k++) s += int32_t(w[size_t(o0 + a) * in + k]) * x[size_t(t0 + b) * in + k];
            y[size_t(t0 + b) * out + o0 + a] = float(s) * ws[o0 + a] * xs[t0 + b];
        }
}

template <int RO>
FDL_AVX512_VNNI static inline void int8_rows(const int8_t* w, const uint8_t* xu, const int8_t* x, const float* xs,
                                             const float* ws, const int32_t* wsum, int n, int in, int in64, int out,
                                             int o0, float* y) {
    int t0 = 0;
    for (; t0 + 4 <= n; t0 += 4) int8_tile<RO, 4>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y);
    switch (n - t0) {
        case 3: int8_tile<RO, 3>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        case 2: int8_tile<RO, 2>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        case 1: int8_tile<RO, 1>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512_VNNI static void matmul_int8_vnni(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws,
                                             const int32_t* wsum, int in, int out, float* y, const uint8_t* xu) {
    const int in64 = in / 64 * 64;
    const int out4 = out / 4 * 4;
    for_row_quads(out4, worth_threads(out, in, n), [&](int o0) { int8_rows<4>(w, xu, x, xs, ws, wsum, n, in, in64, out, o0, y); });
    for (int o0 = out4; o0 < out; o0++) int8_rows<1>(w, xu, x, xs, ws, wsum, n, in, in64, out, o0, y);
}

// ---- AVX512-VNNI, panels ----

// Panel form of the same: the token's 4 unsigned inputs are broadcast, the 16 rows' 4 signed
// weights fill the register; wsum must then cover all of `in`.
// acc += u8 . s8 per 32-bit lane. Inline asm because GCC 12 copies and spills the accumulators
// around the _mm512_dpbusd_epi32 builtin once there are a few dozen of them (the 4x6 tile's loop
// is then full of stack loads and stores); the asm ties acc in and out.
FDL_AVX512_VNNI static inline __attribute__((always_inline)) __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}

template <int RP, int RT>
FDL_AVX512_VNNI static inline void int8_panel_tile(const int8_t* w, const uint8_t* xu, const float* xs, const float* ws,
                                                   const int32_t* wsum, int in, int out, int o0, int t0, float* y) {
    __m512i acc[RP][RT];
    for (int p = 0; p < RP; p++)
        for (int t = 0; t < RT; t++) acc[p][t] = _mm512_setzero_si512();
    const int8_t* wp = w + size_t(o0) * in;
    const size_t pstride = size_t(kPanel) * in;
    for (int k = 0; k < in; k += 4) {
        __m512i wv[RP];
        for (int p = 0; p < RP; p++) wv[p] = _mm512_loadu_si512(wp + p * pstride + size_t(k) * kPanel);
        for (int t = 0; t < RT; t++) {
            uint32_t quad;
            std::memcpy(&quad, xu + size_t(t0 + t) * in + k, 4);
            const __m512i xv = _mm512_set1_epi32(int(quad));
            for (int p = 0; p < RP; p++) acc[p][t] = dpbusd(acc[p][t], xv, wv[p]);
        }
    }
    const __m512i c128 = _mm512_set1_epi32(128);
    for (int p = 0; p < RP; p++) {
        const int o = o0 + p * kPanel;
        const __m512i corr = _mm512_mullo_epi32(c128, _mm512_loadu_si512(wsum + o));
        const __m512 scale = _mm512_loadu_ps(ws + o);
        for (int t = 0; t < RT; t++) {
            const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[p][t], corr));
            _mm512_storeu_ps(y + size_t(t0 + t) * out + o, _mm512_mul_ps(v, _mm512_mul_ps(scale, _mm512_set1_ps(xs[t0 + t]))));
        }
    }
}

template <int RP>
FDL_AVX512_VNNI static inline void int8_panel_tokens(const int8_t* w, const uint8_t* xu, const float* xs, const float* ws,
                                                     const int32_t* wsum, int n, int in, int out, int o0, float* y) {
    int t0 = 0;
    for (; t0 + kTileTokens <= n; t0 += kTileTokens) int8_panel_tile<RP, kTileTokens>(w, xu, xs, ws, wsum, in, out, o0, t0, y);
    switch (n - t0) {
        case 5: int8_panel_tile<RP, 5>(w, xu, xs, ws, wsum, in, out, o0, t0, y); break;
        case 4: int8_panel_tile<RP, 4>(w, xu, xs, ws, wsum, in, out, o0, t0, y); break;
        case 3: int8_panel_tile<RP, 3>(w, xu, xs, ws, wsum, in, out, o0, t0, y); break;
        case 2: int8_panel_tile<RP, 2>(w, xu, xs, ws, wsum, in, out, o0, t0, y); break;
        case 1: int8_panel_tile<RP, 1>(w, xu, xs, ws, wsum, in, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512_VNNI static void int8_panel_range(const float* xs, int n, const int8_t* w, const float* ws,
                                             const int32_t* wsum, int in, int out, float* y, const uint8_t* xu, int p,
                                             int p1) {
    for (; p + kTilePanels <= p1; p += kTilePanels)
        int8_panel_tokens<kTilePanels>(w, xu, xs, ws, wsum, n, in, out, p * kPanel, y);
    for (; p < p1; p++) int8_panel_tokens<1>(w, xu, xs, ws, wsum, n, in, out, p * kPanel, y);
}

FDL_AVX512_VNNI static void matmul_int8_panels(const float* xs, int n, const int8_t* w, const float* ws,
                                               const int32_t* wsum, int in, int out, float* y, const uint8_t* xu) {
    for_panel_chunks(out, n, worth_threads(out, in, n), [&](int p0, int p1, int t0, int t1) {
        int8_panel_range(xs + t0, t1 - t0, w, ws, wsum, in, out, y + size_t(t0) * out, xu + size_t(t0) * in, p0, p1);
    });
}

// ---- AVX2 (row-major weights; CPUs without AVX-512) ----

// int8 x int8 -> int32 exactly: sign-extend 16 bytes to int16, multiply-add pairs to int32.
FDL_AVX2 static void int8_avx2_rows(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws, int in,
                                    int out, float* y, int o0) {
    const int in16 = in / 16 * 16;
    const int ro = std::min(4, out - o0);
    for (int t = 0; t < n; t++) {
        const int8_t* xr = x + size_t(t) * in;
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int k = 0; k < in16; k += 16) {
            const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(xr + k)));
            for (int a = 0; a < ro; a++) {
                const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + size_t(o0 + a) * in + k)));
                acc[a] = _mm256_add_epi32(acc[a], _mm256_madd_epi16(wv, xv));
            }
        }
        for (int a = 0; a < ro; a++) {
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc[a]), _mm256_extracti128_si256(acc[a], 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
            int32_t s = _mm_cvtsi128_si32(s4);
            for (int k = in16; k < in; k++) s += int32_t(w[size_t(o0 + a) * in + k]) * xr[k];
            y[size_t(t) * out + o0 + a] = float(s) * ws[o0 + a] * xs[t];
        }
    }
}

static void matmul_int8_avx2(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws, int in, int out,
                             float* y) {
    // The last group may hold fewer than 4 rows; the row function stops at `out`.
    for_row_quads((out + 3) / 4 * 4, worth_threads(out, in, n), [&](int o0) { int8_avx2_rows(x, xs, n, w, ws, in, out, y, o0); });
}

// ---- Portable ----

static void matmul_int8_portable(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws, int in,
                                 int out, float* y) {
    parallel_ranges(out, balanced_grain(out), worth_threads(out, in, n), [&](int o0, int o1, int) {
        for (int o = o0; o < o1; o++) {
            const int8_t* wr = w + size_t(o) * in;
            for (int t = 0; t < n; t++) {
                const int8_t* xr = x + size_t(t) * in;
                int32_t s = 0;
                for (int k = 0; k < in; k++) s += int32_t(wr[k]) * xr[k];
                y[size_t(t) * out + o] = float(s) * ws[o] * xs[t];
            }
        }
    });
}

bool int8_reads_unsigned() { return cpu_features().avx512vnni; }

void matmul_int8(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws, const int32_t* wsum, int in,
                 int out, float* y, bool packed, const uint8_t* x_u) {
    if (int8_reads_unsigned()) {
        const uint8_t* xu = x_u;
        if (!xu) {
            thread_local std::vector<uint8_t> xu_buf;
            xu_buf.resize(size_t(n) * in);
            int8_to_unsigned(x, xu_buf.size(), xu_buf.data());
            xu = xu_buf.data();
        }
        if (packed) matmul_int8_panels(xs, n, w, ws, wsum, in, out, y, xu);
        else matmul_int8_vnni(x, xs, n, w, ws, wsum, in, out, y, xu);
        return;
    }
    if (has_avx2_fma()) {
        matmul_int8_avx2(x, xs, n, w, ws, in, out, y);
        return;
    }
    matmul_int8_portable(x, xs, n, w, ws, in, out, y);
}

}  // namespace fdl
