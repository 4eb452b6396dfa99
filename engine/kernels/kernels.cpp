#include "engine/kernels/kernels.h"

#include "engine/io/error.h"
#include "engine/parallel/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace fdl {

// Matrix products smaller than this many multiply-adds run on one thread: waking the pool costs
// more than they take.
static inline bool worth_threads(int out, int in, int n) { return long(out) * in * n > (1 << 16); }

// body(o0) for every group of 4 rows o0 = 0, 4, .. below out4, spread over the pool.
template <class Body>
static void for_row_quads(int out4, bool parallel, Body&& body) {
    const int quads = out4 / 4;
    parallel_ranges(quads, balanced_grain(quads), parallel, [&](int q0, int q1, int) {
        for (int q = q0; q < q1; q++) body(4 * q);
    });
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = [] {
        CpuFeatures c;
        __builtin_cpu_init();
        c.avx512f = __builtin_cpu_supports("avx512f");
        c.avx512bf16 = __builtin_cpu_supports("avx512bf16") && c.avx512f;
        c.avx512vnni = __builtin_cpu_supports("avx512vnni") && c.avx512f;
        c.avx2 = __builtin_cpu_supports("avx2");
        c.fma = __builtin_cpu_supports("fma");
        // FASTDLLM_KERNELS=avx2|portable pretends the CPU has less, so the tests can run the
        // other code paths on an AVX-512 machine.
        const char* force = std::getenv("FASTDLLM_KERNELS");
        if (force && (std::strcmp(force, "avx2") == 0 || std::strcmp(force, "portable") == 0)) {
            c.avx512f = c.avx512bf16 = c.avx512vnni = false;
            if (std::strcmp(force, "portable") == 0) c.avx2 = c.fma = false;
        }
        return c;
    }();
    return f;
}

static bool has_avx2_fma() { return cpu_features().avx2 && cpu_features().fma; }

const char* kernel_path_name() {
    const CpuFeatures& f = cpu_features();
    if (f.avx512bf16 && f.avx512vnni) return "avx512-bf16+vnni";
    if (f.avx512bf16) return "avx512-bf16";
    if (f.avx512f) return "avx512f";
    if (has_avx2_fma()) return "avx2";
    return "portable";
}

#define FDL_AVX512F __attribute__((target("avx512f")))

static inline float bf16f(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void to_bf16(const float* x, size_t count, uint16_t* out) {
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        std::memcpy(&u, &x[i], 4);
        u += 0x7fff + ((u >> 16) & 1);
        out[i] = uint16_t(u >> 16);
    }
}

// Same arithmetic as the scalar loop below (max |x|, one float multiply, round to nearest even),
// 16 values at a time.
FDL_AVX512F static void quantize_row_avx512(const float* r, int in, int8_t* qr, float* scale) {
    __m512 mv = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= in; j += 16) mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_loadu_ps(r + j)));
    float amax = _mm512_reduce_max_ps(mv);
    for (; j < in; j++) amax = std::max(amax, std::fabs(r[j]));
    const float s = amax > 0 ? amax / 127.f : 1.f, inv = 1.f / s;
    *scale = s;
    const __m512 iv = _mm512_set1_ps(inv);
    for (j = 0; j + 16 <= in; j += 16)
        _mm_storeu_si128((__m128i*)(qr + j), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(r + j), iv))));
    for (; j < in; j++) qr[j] = int8_t(std::lrintf(r[j] * inv));
}

void quantize_rows_int8(const float* x, int n, int in, int8_t* q, float* scales) {
    if (cpu_features().avx512f) {
        for (int i = 0; i < n; i++) quantize_row_avx512(x + size_t(i) * in, in, q + size_t(i) * in, scales + i);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float* r = x + size_t(i) * in;
        float amax = 0;
        for (int j = 0; j < in; j++) amax = std::max(amax, std::fabs(r[j]));
        const float s = amax > 0 ? amax / 127.f : 1.f, inv = 1.f / s;
        scales[i] = s;
        int8_t* qr = q + size_t(i) * in;
        for (int j = 0; j < in; j++) qr[j] = int8_t(std::lrintf(r[j] * inv));
    }
}

// ---- Panel layout (what the AVX-512 kernels read) ----
// Weights are repacked at load into panels of 16 rows. Inside a panel, for each group of G
// consecutive inputs (G = 2 for bf16, 4 for int8: what one 32-bit lane of vdpbf16ps / vpdpbusd
// consumes), the 16 rows' G values sit side by side: 64 bytes, one zmm register, one output row
// per lane. A pass then computes 16 outputs per register with the token's G inputs broadcast:
// no horizontal sums at the end (which cost as much as the dot products themselves when `in` is
// a few hundred), the same weight vector serves up to 6 tokens from registers, and each panel is
// one long linear stream for the prefetchers (row-major rows of 1.5-3 KB read four at a time were
// not). Measured on the 2-core EPYC, 2 threads: see README "Speed, measured here".

size_t panel_index(int in, int r, int k, int group) {
    return size_t(r / kPanel) * kPanel * in + size_t(k / group) * kPanel * group + size_t(r % kPanel) * group + k % group;
}

// In place, a panel per chunk on the thread pool (loading; large matrices only).
template <typename T>
static void pack_panels(T* w, int in, int out, int group) {
    const bool parallel = long(out) * in >= (1L << 20);
    std::vector<std::vector<T>> tmp(size_t(parallel ? pool_threads() : 1));
    parallel_chunks(out / kPanel, parallel, [&](int c, int worker) {
        std::vector<T>& t = tmp[size_t(worker)];
        t.resize(size_t(kPanel) * in);
        T* p = w + size_t(c) * kPanel * in;
        std::memcpy(t.data(), p, t.size() * sizeof(T));
        for (int k = 0; k < in; k += group)  // in panel_index order, written front to back
            for (int r = 0; r < kPanel; r++)
                for (int g = 0; g < group; g++) *p++ = t[size_t(r) * in + k + g];
    });
}

void pack_bf16_rows(const uint8_t* const* rows, int in, int out, bool panels, uint16_t* dst) {
    if (!panels) {
        parallel_chunks(out, true, [&](int r, int) { std::memcpy(dst + size_t(r) * in, rows[r], size_t(in) * 2); });
        return;
    }
    parallel_chunks(out / kPanel, true, [&](int c, int) {
        uint16_t* p = dst + size_t(c) * kPanel * in;  // panel_index order: k pairs, then the 16 rows
        const uint8_t* const* r = rows + size_t(c) * kPanel;
        for (int k = 0; k < in; k += 2, p += 2 * kPanel)
            for (int i = 0; i < kPanel; i++) std::memcpy(p + 2 * i, r[i] + size_t(k) * 2, 4);
    });
}

bool packs_f32(int in, int out) { return cpu_features().avx512f && out % kPanel == 0; }
bool packs_bf16(int in, int out) { return cpu_features().avx512bf16 && in % 2 == 0 && out % kPanel == 0; }
bool packs_int8(int in, int out) { return cpu_features().avx512vnni && in % 4 == 0 && out % kPanel == 0; }
void pack_f32(float* w, int in, int out) { pack_panels(w, in, out, 1); }
void pack_bf16(uint16_t* w, int in, int out) { pack_panels(w, in, out, 2); }
void pack_int8(int8_t* w, int in, int out) { pack_panels(w, in, out, 4); }

// Register tile: RP panels (RP*16 outputs) x RT tokens, RP*RT accumulators.
constexpr int kTilePanels = 4, kTileTokens = 6;

// ---- BF16 ----

// Tiles of 4 weight rows x RT tokens (RT = 1..4, a compile-time constant so the accumulators
// stay in registers). Each block of 4 weight rows stays in L1 while every token group passes over
// it, so the weights stream from memory once per pass whatever the token count.
#define FDL_AVX512_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

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

// The panel kernels hand out work in chunks of one tile width (kTilePanels panels), claimed one
// at a time, so the threads end together (a static split of whole tiles had divided the demo's
// 43-panel MLP matrices 28:15) and a thread the OS pauses holds up one chunk, not half the matrix.
// When a matrix has few tiles for the threads (a 256-wide one has 4), the tokens are split in two
// as well, at a whole tile: the last chunk a thread waits for at the end of the job is then half
// as long. range(p0, p1, t0, t1): panels [p0, p1) for tokens [t0, t1).
template <class Range>
static void for_panel_chunks(int out, int n, bool parallel, Range&& range) {
    const int panels = out / kPanel, groups = (panels + kTilePanels - 1) / kTilePanels;
    const int halves = parallel && n >= 2 * kTileTokens && groups < 4 * pool_threads() ? 2 : 1;
    const int split = halves == 2 ? (n / 2 + kTileTokens - 1) / kTileTokens * kTileTokens : n;
    parallel_chunks(groups * halves, parallel, [&](int c, int) {
        const int g = c / halves, h = c % halves;
        range(g * kTilePanels, std::min(panels, (g + 1) * kTilePanels), h == 0 ? 0 : split, h == halves - 1 ? n : split);
    });
}

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

// ---- F32, panels ----
// The BF16 panel kernel with one input per lane: fused multiply-adds of 16 weight rows against a
// broadcast input, the same 4-panel x 6-token tile. Each output is one float sum over k in order.

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

// ---- AVX2 (row-major weights; CPUs without AVX-512) ----
// 4 weight rows x 1 token per tile; bf16 widened to float by a 16-bit shift, then FMA.
#define FDL_AVX2 __attribute__((target("avx2,fma")))

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

void matmul_bf16(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y, bool packed) {
    if (packed) matmul_bf16_panels(x, n, w, in, out, y);  // only ever packed when the CPU has AVX512-BF16
    else if (cpu_features().avx512bf16) matmul_bf16_avx512(x, n, w, in, out, y);
    else if (has_avx2_fma()) matmul_bf16_avx2(x, n, w, in, out, y);
    else matmul_bf16_portable(x, n, w, in, out, y);
}

// ---- INT8 ----

// VNNI multiplies unsigned by signed bytes: activations are shifted to u8 (q + 128) and the
// extra 128 * sum(w) is subtracted afterwards. Same tiling as BF16.
#define FDL_AVX512_VNNI __attribute__((target("avx512f,avx512vnni,avx512bw,avx512vl")))

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

// Panel form of the same: the token's 4 unsigned inputs are broadcast, the 16 rows' 4 signed
// weights fill the register; wsum must then cover all of `in`.
// acc += u8 . s8 per 32-bit lane. Inline asm because GCC 12 copies and spills the accumulators
// around the _mm512_dpbusd_epi32 builtin once there are a few dozen of them (seen in the
// generated loop: 139 stack accesses for the 4x6 tile); the asm ties acc in and out.
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

// vpdpbusd multiplies unsigned by signed bytes, so the activations go in shifted by 128 (the
// kernels subtract 128 * sum(w) after). GCC left the plain loop scalar, a byte per cycle, and it
// was 12% of an int8 32-token pass.
// Converts whole 64-byte blocks; returns how many bytes it did.
FDL_AVX512F static size_t to_unsigned_avx512(const int8_t* x, size_t len, uint8_t* xu) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));  // x ^ 0x80 == x + 128 as a byte
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        _mm512_storeu_si512(xu + i, _mm512_xor_si512(_mm512_loadu_si512(x + i), flip));
    return i;
}

FDL_AVX512_VNNI static void matmul_int8_panels(const float* xs, int n, const int8_t* w, const float* ws,
                                               const int32_t* wsum, int in, int out, float* y, const uint8_t* xu) {
    for_panel_chunks(out, n, worth_threads(out, in, n), [&](int p0, int p1, int t0, int t1) {
        int8_panel_range(xs + t0, t1 - t0, w, ws, wsum, in, out, y + size_t(t0) * out, xu + size_t(t0) * in, p0, p1);
    });
}

// ---- Attention and SwiGLU ----

// exp(x) for 16 floats: x = n ln2 + f with |f| <= ln2/2 (Cody-Waite: ln2 in two parts so f keeps
// its precision for large |x|), e^f by its degree-7 Taylor polynomial (truncation below 1e-8
// relative), times 2^n. Within a few float ulps of expf.
FDL_AVX512F static inline __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-103.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), f);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// out[j] = silu(g[j]) * u[j], scalar: other CPUs, and the tail of the AVX-512 loop.
static void silu_mul_scalar(const float* g, const float* u, float* out, int from, int n) {
    for (int j = from; j < n; j++) out[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
}

FDL_AVX512F static void silu_mul_avx512(const float* g, const float* u, float* out, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 gv = _mm512_loadu_ps(g + i);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        const __m512 sg = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(sg, _mm512_loadu_ps(u + i)));
    }
    silu_mul_scalar(g, u, out, i, n);
}

void swiglu_rows(const float* gu, int n, int inter, float* out) {
    const bool avx512 = cpu_features().avx512f;
    for (int i = 0; i < n; i++) {
        const float* g = gu + size_t(i) * 2 * inter;
        const float* u = g + inter;
        float* o = out + size_t(i) * inter;
        if (avx512) silu_mul_avx512(g, u, o, inter);
        else silu_mul_scalar(g, u, o, 0, inter);
    }
}

// ---- Softmax over a row of logits (the sampler's confidence) ----

FDL_AVX512F static float max_value_avx512(const float* x, int n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) acc = _mm512_max_ps(_mm512_loadu_ps(x + j), acc);  // a NaN keeps acc
    float m = _mm512_reduce_max_ps(acc);
    for (; j < n; j++) m = std::max(m, x[j]);
    return m;
}

float max_value(const float* x, int n) {
    if (cpu_features().avx512f) return max_value_avx512(x, n);
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = std::max(m, x[j]);
    return m;
}

// Exponentials in float (a few ulps), summed in double.
FDL_AVX512F static double exp_sum_double_avx512(const float* x, int n, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
    for (; j < n; j++) s += std::exp(double(x[j]) - mx);
    return s;
}

double exp_sum(const float* x, int n, float mx) {
    if (cpu_features().avx512f) return exp_sum_double_avx512(x, n, mx);
    double s = 0;
    for (int j = 0; j < n; j++) s += std::exp(double(x[j]) - mx);
    return s;
}

FDL_AVX512F static float exp_sum_avx512(float* s, int len, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= len; j += 16) {
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j), m));
        _mm512_storeu_ps(s + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < len) {
        const __mmask16 k = __mmask16((1u << (len - j)) - 1);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m));
        _mm512_mask_storeu_ps(s + j, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

template <int HD>
FDL_AVX512F static void attend_row_avx512(const float* q, const float* K, const float* V, size_t stride, int len,
                                          float scale, float* s, float* o) {
    constexpr int C = HD / 16;
    __m512 qv[C];
    for (int c = 0; c < C; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);
    float mx = -INFINITY;
    int j = 0;
    for (; j + 2 <= len; j += 2) {  // two keys at a time: two independent chains
        const float* k0 = K + size_t(j) * stride;
        const float* k1 = k0 + stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0)), a1 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k1));
        for (int c = 1; c < C; c++) {
            a0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + 16 * c), a0);
            a1 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k1 + 16 * c), a1);
        }
        s[j] = _mm512_reduce_add_ps(a0) * scale;
        s[j + 1] = _mm512_reduce_add_ps(a1) * scale;
        mx = std::max(mx, std::max(s[j], s[j + 1]));
    }
    for (; j < len; j++) {
        const float* k0 = K + size_t(j) * stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0));
        for (int c = 1; c < C; c++) a0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k0 + 16 * c), a0);
        s[j] = _mm512_reduce_add_ps(a0) * scale;
        mx = std::max(mx, s[j]);
    }
    const float inv = 1.0f / exp_sum_avx512(s, len, mx);
    __m512 ov[C];
    for (int c = 0; c < C; c++) ov[c] = _mm512_setzero_ps();
    for (j = 0; j < len; j++) {
        const float* vr = V + size_t(j) * stride;
        const __m512 wv = _mm512_set1_ps(s[j] * inv);
        for (int c = 0; c < C; c++) ov[c] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(vr + 16 * c), ov[c]);
    }
    for (int c = 0; c < C; c++) _mm512_storeu_ps(o + 16 * c, ov[c]);
}

static void attend_row_portable(const float* q, const float* K, const float* V, size_t stride, int len, int hd,
                                float scale, float* s, float* o) {
    float mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        const float* kr = K + size_t(j) * stride;
        float d = 0;
#pragma omp simd reduction(+ : d)  // lets the compiler vectorise the float sum
        for (int t = 0; t < hd; t++) d += q[t] * kr[t];
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
    }
    float sum = 0;
    for (int j = 0; j < len; j++) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int t = 0; t < hd; t++) o[t] = 0;
    for (int j = 0; j < len; j++) {
        const float* vr = V + size_t(j) * stride;
        const float w = s[j] * inv;
        for (int t = 0; t < hd; t++) o[t] += w * vr[t];
    }
}

void attend_row(const float* q, const float* K, const float* V, size_t stride, int len, int hd, float scale, float* s,
                float* o) {
    if (cpu_features().avx512f && hd == 64) attend_row_avx512<64>(q, K, V, stride, len, scale, s, o);
    else if (cpu_features().avx512f && hd == 128) attend_row_avx512<128>(q, K, V, stride, len, scale, s, o);
    else attend_row_portable(q, K, V, stride, len, hd, scale, s, o);
}

// Up to 16 query rows of one KV head, one row per vector lane: the scores of 8 keys for all 16
// rows come from 8 FMAs per dimension (a broadcast key element times the transposed queries), so
// no horizontal sums; the softmax runs across lanes; keys go in chunks with an online softmax
// (running max and sum, the partial output rescaled when the max grows), so the scratch stays
// on the stack whatever the context length.
FDL_AVX512F static void attend_rows16_avx512(const float* const* q, float* const* o, const int* limits, int nrows,
                                             const float* K, const float* V, size_t stride, int hd, float scale) {
    // Unaligned loads and stores throughout: the stack arrays are aligned for speed, but
    // AddressSanitizer's fake stack (detect_stack_use_after_return) does not keep 64-byte alignment.
    constexpr int CH = 256;                     // keys per chunk
    alignas(64) float qt[kMaxHeadDim * 16];     // transposed, pre-scaled queries: qt[d][lane]
    alignas(64) float ot[kMaxHeadDim * 16];     // transposed output accumulator: ot[d][lane]
    alignas(64) float sc[CH * 16];              // scores, then weights, of one chunk: sc[key][lane]
    alignas(64) int lim[16];
    int L = 0;
    for (int r = 0; r < 16; r++) {
        lim[r] = r < nrows ? limits[r] : 0;
        L = std::max(L, lim[r]);
    }
    for (int d = 0; d < hd; d++)
        for (int r = 0; r < 16; r++) qt[d * 16 + r] = r < nrows ? q[r][d] * scale : 0.f;
    std::fill(ot, ot + size_t(hd) * 16, 0.f);
    const __m512i limv = _mm512_loadu_si512(lim);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 mx = ninf, sum = _mm512_setzero_ps();
    for (int j0 = 0; j0 < L; j0 += CH) {
        const int nk = std::min(CH, L - j0);
        __m512 cmx = ninf;
        int j = 0;
        for (; j + 8 <= nk; j += 8) {
            const float* kr = K + size_t(j0 + j) * stride;
            __m512 a[8];
            for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_ps();
            for (int d = 0; d < hd; d++) {
                const __m512 qd = _mm512_loadu_ps(qt + d * 16);
                for (int k = 0; k < 8; k++) a[k] = _mm512_fmadd_ps(qd, _mm512_set1_ps(kr[size_t(k) * stride + d]), a[k]);
            }
            for (int k = 0; k < 8; k++) {
                const __mmask16 m = _mm512_cmpgt_epi32_mask(limv, _mm512_set1_epi32(j0 + j + k));
                a[k] = _mm512_mask_blend_ps(m, ninf, a[k]);
                cmx = _mm512_max_ps(cmx, a[k]);
                _mm512_storeu_ps(sc + (j + k) * 16, a[k]);
            }
        }
        for (; j < nk; j++) {
            const float* kr = K + size_t(j0 + j) * stride;
            __m512 a = _mm512_setzero_ps();
            for (int d = 0; d < hd; d++) a = _mm512_fmadd_ps(_mm512_loadu_ps(qt + d * 16), _mm512_set1_ps(kr[d]), a);
            const __mmask16 m = _mm512_cmpgt_epi32_mask(limv, _mm512_set1_epi32(j0 + j));
            a = _mm512_mask_blend_ps(m, ninf, a);
            cmx = _mm512_max_ps(cmx, a);
            _mm512_storeu_ps(sc + j * 16, a);
        }
        // Lanes with no key yet (mx = -inf) start from zero; lanes with no key in this chunk keep
        // their max. Masked scores become weight 0, never exp(-inf - -inf).
        const __m512 nmx = _mm512_max_ps(mx, cmx);
        const __mmask16 had = _mm512_cmp_ps_mask(mx, ninf, _CMP_NEQ_OQ);
        const __m512 alpha = _mm512_maskz_mov_ps(had, exp_avx512(_mm512_sub_ps(mx, nmx)));
        const __mmask16 live = _mm512_cmp_ps_mask(nmx, ninf, _CMP_NEQ_OQ);
        mx = nmx;
        __m512 csum = _mm512_setzero_ps();
        for (j = 0; j < nk; j++) {
            const __mmask16 m = _mm512_cmpgt_epi32_mask(limv, _mm512_set1_epi32(j0 + j)) & live;
            const __m512 e = _mm512_maskz_mov_ps(m, exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(sc + j * 16), nmx)));
            _mm512_storeu_ps(sc + j * 16, e);
            csum = _mm512_add_ps(csum, e);
        }
        sum = _mm512_fmadd_ps(sum, alpha, csum);
        for (int d0 = 0; d0 < hd; d0 += 16) {  // ot[d] = alpha * ot[d] + sum_j w[j] * V[j][d]
            __m512 acc[16];
            for (int t = 0; t < 16; t++) acc[t] = _mm512_mul_ps(_mm512_loadu_ps(ot + (d0 + t) * 16), alpha);
            for (j = 0; j < nk; j++) {
                const __m512 w = _mm512_loadu_ps(sc + j * 16);
                const float* vr = V + size_t(j0 + j) * stride + d0;
                for (int t = 0; t < 16; t++) acc[t] = _mm512_fmadd_ps(w, _mm512_set1_ps(vr[t]), acc[t]);
            }
            for (int t = 0; t < 16; t++) _mm512_storeu_ps(ot + (d0 + t) * 16, acc[t]);
        }
    }
    alignas(64) float inv[16];
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    for (int r = 0; r < nrows; r++)
        for (int d = 0; d < hd; d++) o[r][d] = ot[d * 16 + r] * inv[r];
}

void attend_rows16(const float* const* q, float* const* o, const int* limits, int nrows, const float* K, const float* V,
                   size_t stride, int hd, float scale, float* s) {
    if (nrows < 1 || nrows > 16) throw Error("internal: attend_rows16 takes 1 to 16 rows");
    if (cpu_features().avx512f && hd % 16 == 0 && hd <= kMaxHeadDim) {
        attend_rows16_avx512(q, o, limits, nrows, K, V, stride, hd, scale);
        return;
    }
    for (int r = 0; r < nrows; r++) attend_row(q[r], K, V, stride, limits[r], hd, scale, s, o[r]);
}

bool int8_reads_unsigned() { return cpu_features().avx512vnni; }

void int8_to_unsigned(const int8_t* x, size_t count, uint8_t* out) {
    size_t i = cpu_features().avx512f ? to_unsigned_avx512(x, count, out) : 0;
    for (; i < count; i++) out[i] = uint8_t(int(x[i]) + 128);
}

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

}  // namespace fdl
