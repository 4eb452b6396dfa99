// What the kernel sources share and the rest of the engine does not see: the instruction-set
// attributes each kernel is compiled for, the dispatch test for the AVX2 paths, how a matrix
// product is spread over the thread pool, the register tile of the panel kernels, and the
// AVX-512 exponential.
#pragma once
#include "engine/kernels/kernels.h"
#include "engine/parallel/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

// Each SIMD kernel is compiled for its own instruction set (whatever -march says) and only
// called after cpu_features() has found that set on this CPU.
#define FDL_AVX512F __attribute__((target("avx512f")))
#define FDL_AVX512_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))
#define FDL_AVX512_VNNI __attribute__((target("avx512f,avx512vnni,avx512bw,avx512vl")))
#define FDL_AVX2 __attribute__((target("avx2,fma")))

namespace fdl::detail {

inline bool has_avx2_fma() { return cpu_features().avx2 && cpu_features().fma; }

// Matrix products smaller than this many multiply-adds run on one thread: waking the pool costs
// more than they take.
inline bool worth_threads(int out, int in, int n) { return long(out) * in * n > (1 << 16); }

// body(o0) for every group of 4 rows o0 = 0, 4, .. below out4, spread over the pool.
template <class Body>
void for_row_quads(int out4, bool parallel, Body&& body) {
    const int quads = out4 / 4;
    parallel_ranges(quads, balanced_grain(quads), parallel, [&](int q0, int q1, int) {
        for (int q = q0; q < q1; q++) body(4 * q);
    });
}

// Register tile of the panel kernels: RP panels (RP*16 outputs) x RT tokens, RP*RT accumulators.
constexpr int kTilePanels = 4, kTileTokens = 6;

// The panel kernels hand out work in chunks of one tile width (kTilePanels panels), claimed one
// at a time, so the threads end together (a static split of whole tiles divides a matrix of a
// dozen or so tiles unevenly) and a thread the OS pauses holds up one chunk, not half the matrix.
// When a matrix has few tiles for the threads (a 256-wide one has 4), the tokens are split in two
// as well, at a whole tile: the last chunk a thread waits for at the end of the job is then half
// as long. range(p0, p1, t0, t1): panels [p0, p1) for tokens [t0, t1).
template <class Range>
void for_panel_chunks(int out, int n, bool parallel, Range&& range) {
    const int panels = out / kPanel, groups = (panels + kTilePanels - 1) / kTilePanels;
    const int halves = parallel && n >= 2 * kTileTokens && groups < 4 * pool_threads() ? 2 : 1;
    const int split = halves == 2 ? (n / 2 + kTileTokens - 1) / kTileTokens * kTileTokens : n;
    parallel_chunks(groups * halves, parallel, [&](int c, int) {
        const int g = c / halves, h = c % halves;
        range(g * kTilePanels, std::min(panels, (g + 1) * kTilePanels), h == 0 ? 0 : split, h == halves - 1 ? n : split);
    });
}

// exp(x) for 16 floats: x = n ln2 + f with |f| <= ln2/2 (Cody-Waite: ln2 in two parts so f keeps
// its precision for large |x|), e^f by its degree-7 Taylor polynomial (truncation below 1e-8
// relative), times 2^n. Within a few float ulps of expf.
FDL_AVX512F inline __m512 exp_avx512(__m512 x) {
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

}  // namespace fdl::detail
