// Attention over a KV cache: one query row (attend_row), or up to 16 rows that share a KV head
// (attend_rows16); AVX-512 for the head dimensions it takes, else portable loops.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include "engine/io/error.h"

#include <cmath>

namespace fdl {

using namespace detail;

// s[j] = exp(s[j] - mx) for j < len; returns their float sum.
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

}  // namespace fdl
