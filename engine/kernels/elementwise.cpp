// Elementwise kernels: SwiGLU's activation, the max and exponential sum of a row of logits (the
// sampler's softmax), and the conversions of activations to bfloat16, to int8 with per-row
// scales, and of int8 to the unsigned bytes the VNNI kernels read.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include <cmath>
#include <cstring>

namespace fdl {

using namespace detail;

// ---- Conversions ----

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

// vpdpbusd multiplies unsigned by signed bytes, so the activations go in shifted by 128 (the
// kernels subtract 128 * sum(w) after). GCC leaves the plain loop scalar, a byte per cycle, a
// noticeable share of an int8 pass of a few dozen tokens.
// Converts whole 64-byte blocks; returns how many bytes it did.
FDL_AVX512F static size_t to_unsigned_avx512(const int8_t* x, size_t len, uint8_t* xu) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));  // x ^ 0x80 == x + 128 as a byte
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        _mm512_storeu_si512(xu + i, _mm512_xor_si512(_mm512_loadu_si512(x + i), flip));
    return i;
}

void int8_to_unsigned(const int8_t* x, size_t count, uint8_t* out) {
    size_t i = cpu_features().avx512f ? to_unsigned_avx512(x, count, out) : 0;
    for (; i < count; i++) out[i] = uint8_t(int(x[i]) + 128);
}

// ---- SwiGLU ----

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

}  // namespace fdl
