#include "engine/kernels.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace fdl {

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = [] {
        CpuFeatures c;
        __builtin_cpu_init();
        c.avx512f = __builtin_cpu_supports("avx512f");
        c.avx512bf16 = __builtin_cpu_supports("avx512bf16") && c.avx512f;
        c.avx512vnni = __builtin_cpu_supports("avx512vnni") && c.avx512f;
        c.avx2 = __builtin_cpu_supports("avx2");
        c.fma = __builtin_cpu_supports("fma");
        return c;
    }();
    return f;
}

const char* kernel_path_name() {
    const CpuFeatures& f = cpu_features();
    if (f.avx512bf16 && f.avx512vnni) return "avx512-bf16+vnni";
    if (f.avx512bf16) return "avx512-bf16";
    if (f.avx2) return "avx2";
    return "portable";
}

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

void quantize_rows_int8(const float* x, int n, int in, int8_t* q, float* scales) {
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

// ---- Packed weight layout ----
// Rows are read four at a time. In the checkpoint's row-major order that is four short streams
// (one row of a 1.5B layer is 1.5-3 KB), which the hardware prefetchers follow poorly; packing each
// group of 4 rows so that their 64-byte chunks alternate (row 0 chunk 0, row 1 chunk 0, ..., row 0
// chunk 1, ...) turns a group into one linear stream. Measured on the 2-core EPYC (2 threads, same
// quarter hour): a one-token pass of the 1.5B shape went from 89 to 33-53 ms in INT8 and from 122
// to 93-98 ms in BF16 (the spread is the VM's memory bandwidth moving under us).
template <bool P, int CH>
static inline size_t weight_index(int in, int o0, int a, int k) {
    if (!P) return size_t(o0 + a) * in + k;
    return size_t(o0) * in + size_t(k / CH) * 4 * CH + size_t(a) * CH + k % CH;
}

size_t packed_index(int in, int r, int k, int chunk) {
    const int o0 = r / 4 * 4, a = r % 4;
    return size_t(o0) * in + size_t(k / chunk) * 4 * chunk + size_t(a) * chunk + k % chunk;
}

template <typename T>
static void pack_rows(T* w, int in, int out, int chunk) {
    std::vector<T> tmp(size_t(4) * in);
    for (int o0 = 0; o0 < out; o0 += 4) {
        T* g = w + size_t(o0) * in;
        std::memcpy(tmp.data(), g, tmp.size() * sizeof(T));
        for (int a = 0; a < 4; a++)
            for (int k = 0; k < in; k += chunk)
                std::memcpy(g + size_t(k / chunk) * 4 * chunk + size_t(a) * chunk, tmp.data() + size_t(a) * in + k,
                            chunk * sizeof(T));
    }
}

bool packs_bf16(int in, int out) { return cpu_features().avx512bf16 && in % 32 == 0 && out % 4 == 0; }
bool packs_int8(int in, int out) { return cpu_features().avx512vnni && in % 64 == 0 && out % 4 == 0; }
void pack_bf16(uint16_t* w, int in, int out) { pack_rows(w, in, out, 32); }
void pack_int8(int8_t* w, int in, int out) { pack_rows(w, in, out, 64); }

// ---- BF16 ----

// Tiles of 4 weight rows x RT tokens (RT = 1..4, a compile-time constant so the accumulators
// stay in registers). Each block of 4 weight rows stays in L1 while every token group passes over
// it, so the weights stream from memory once per pass whatever the token count.
#define FDL_AVX512_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

template <int RO, int RT, bool P>
FDL_AVX512_BF16 static inline void bf16_tile(const uint16_t* w, const uint16_t* x, int in, int in32, int out, int o0,
                                             int t0, float* y) {
    __m512 acc[RO][RT];
    for (int a = 0; a < RO; a++)
        for (int b = 0; b < RT; b++) acc[a][b] = _mm512_setzero_ps();
    for (int k = 0; k < in32; k += 32) {
        __m512bh xv[RT];
        for (int b = 0; b < RT; b++) xv[b] = (__m512bh)_mm512_loadu_si512(x + size_t(t0 + b) * in + k);
        for (int a = 0; a < RO; a++) {
            const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + weight_index<P, 32>(in, o0, a, k));
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

template <int RO, bool P>
FDL_AVX512_BF16 static inline void bf16_rows(const uint16_t* w, const uint16_t* x, int n, int in, int in32, int out, int o0,
                                             float* y) {
    int t0 = 0;
    for (; t0 + 4 <= n; t0 += 4) bf16_tile<RO, 4, P>(w, x, in, in32, out, o0, t0, y);
    switch (n - t0) {
        case 3: bf16_tile<RO, 3, P>(w, x, in, in32, out, o0, t0, y); break;
        case 2: bf16_tile<RO, 2, P>(w, x, in, in32, out, o0, t0, y); break;
        case 1: bf16_tile<RO, 1, P>(w, x, in, in32, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512_BF16 static void matmul_bf16_avx512(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y,
                                               bool packed) {
    const int in32 = in / 32 * 32;
    const int out4 = out / 4 * 4;
    if (packed) {
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
        for (int o0 = 0; o0 < out; o0 += 4) bf16_rows<4, true>(w, x, n, in, in32, out, o0, y);
        return;
    }
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
    for (int o0 = 0; o0 < out4; o0 += 4) bf16_rows<4, false>(w, x, n, in, in32, out, o0, y);
    for (int o0 = out4; o0 < out; o0++) bf16_rows<1, false>(w, x, n, in, in32, out, o0, y);
}

// ---- F32 for small token counts ----
// OpenBLAS is tuned for large GEMMs; for the 1..32-token passes of decoding the same register
// tiling as BF16 streams the weights faster.
#define FDL_AVX512F __attribute__((target("avx512f")))

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
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
    for (int o0 = 0; o0 < out4; o0 += 4) f32_rows<4>(w, x, n, in, in16, out, o0, y);
    for (int o0 = out4; o0 < out; o0++) f32_rows<1>(w, x, n, in, in16, out, o0, y);
}

bool matmul_f32_small(const float* x, int n, const float* w, int in, int out, float* y) {
    if (!cpu_features().avx512f || n > 8) return false;  // OpenBLAS wins from ~16 tokens on
    matmul_f32_avx512(x, n, w, in, out, y);
    return true;
}

static void matmul_bf16_portable(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y) {
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
    for (int o = 0; o < out; o++) {
        const uint16_t* wr = w + size_t(o) * in;
        for (int t = 0; t < n; t++) {
            const uint16_t* xr = x + size_t(t) * in;
            float s = 0;
            for (int k = 0; k < in; k++) s += bf16f(wr[k]) * bf16f(xr[k]);
            y[size_t(t) * out + o] = s;
        }
    }
}

void matmul_bf16(const uint16_t* x, int n, const uint16_t* w, int in, int out, float* y, bool packed) {
    if (cpu_features().avx512bf16) matmul_bf16_avx512(x, n, w, in, out, y, packed);
    else matmul_bf16_portable(x, n, w, in, out, y);  // never packed: see packs_bf16()
}

// ---- INT8 ----

// VNNI multiplies unsigned by signed bytes: activations are shifted to u8 (q + 128) and the
// extra 128 * sum(w) is subtracted afterwards. Same tiling as BF16.
#define FDL_AVX512_VNNI __attribute__((target("avx512f,avx512vnni,avx512bw,avx512vl")))

template <int RO, int RT, bool P>
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
            const __m512i wv = _mm512_loadu_si512(w + weight_index<P, 64>(in, o0, a, k));
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

template <int RO, bool P>
FDL_AVX512_VNNI static inline void int8_rows(const int8_t* w, const uint8_t* xu, const int8_t* x, const float* xs,
                                             const float* ws, const int32_t* wsum, int n, int in, int in64, int out,
                                             int o0, float* y) {
    int t0 = 0;
    for (; t0 + 4 <= n; t0 += 4) int8_tile<RO, 4, P>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y);
    switch (n - t0) {
        case 3: int8_tile<RO, 3, P>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        case 2: int8_tile<RO, 2, P>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        case 1: int8_tile<RO, 1, P>(w, xu, x, xs, ws, wsum, in, in64, out, o0, t0, y); break;
        default: break;
    }
}

FDL_AVX512_VNNI static void matmul_int8_vnni(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws,
                                             const int32_t* wsum, int in, int out, float* y, const uint8_t* xu,
                                             bool packed) {
    const int in64 = in / 64 * 64;
    const int out4 = out / 4 * 4;
    if (packed) {
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
        for (int o0 = 0; o0 < out; o0 += 4) int8_rows<4, true>(w, xu, x, xs, ws, wsum, n, in, in64, out, o0, y);
        return;
    }
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
    for (int o0 = 0; o0 < out4; o0 += 4) int8_rows<4, false>(w, xu, x, xs, ws, wsum, n, in, in64, out, o0, y);
    for (int o0 = out4; o0 < out; o0++) int8_rows<1, false>(w, xu, x, xs, ws, wsum, n, in, in64, out, o0, y);
}

void matmul_int8(const int8_t* x, const float* xs, int n, const int8_t* w, const float* ws, const int32_t* wsum, int in,
                 int out, float* y, bool packed) {
    if (cpu_features().avx512vnni) {
        thread_local std::vector<uint8_t> xu;
        xu.resize(size_t(n) * in);
        for (size_t i = 0; i < xu.size(); i++) xu[i] = uint8_t(int(x[i]) + 128);
        matmul_int8_vnni(x, xs, n, w, ws, wsum, in, out, y, xu.data(), packed);
        return;
    }
#pragma omp parallel for schedule(static) if (long(out) * in * n > (1 << 16))
    for (int o = 0; o < out; o++) {
        const int8_t* wr = w + size_t(o) * in;
        for (int t = 0; t < n; t++) {
            const int8_t* xr = x + size_t(t) * in;
            int32_t s = 0;
            for (int k = 0; k < in; k++) s += int32_t(wr[k]) * xr[k];
            y[size_t(t) * out + o] = float(s) * ws[o] * xs[t];
        }
    }
}

}  // namespace fdl
