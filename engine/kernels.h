// Matrix kernels for the weight formats the engine keeps: y[n, out] = x[n, in] @ W[out, in]^T.
// F32 goes through OpenBLAS. BF16 (weights and activations rounded to bfloat16, float32
// accumulation) uses AVX512-BF16 dot products when the CPU has them, checked at run time,
// and a portable loop otherwise. INT8 keeps one float scale per weight row; activations are
// quantised per token to int8 and multiplied with AVX512-VNNI when available.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fdl {

struct CpuFeatures {
    bool avx512f = false, avx512bf16 = false, avx512vnni = false, avx2 = false, fma = false;
};
const CpuFeatures& cpu_features();
const char* kernel_path_name();  // "avx512-bf16", "avx2", ... (what the BF16/INT8 kernels use here)

// F32 for passes of at most 8 tokens with AVX-512; returns false (nothing done) otherwise, and
// the caller uses OpenBLAS.
bool matmul_f32_small(const float* x, int n, const float* w, int in, int out, float* y);

// Weight layouts. The AVX-512 kernels stream weights fastest when each group of 4 rows is stored
// with their 64-byte chunks interleaved (see kernels.cpp). packs_*() says whether that layout is
// used for a matrix of this shape on this CPU; pack_*() rewrites a row-major matrix in place;
// packed_index() is where element (r, k) then lives (chunk: 32 for bf16, 64 for int8).
bool packs_bf16(int in, int out);
bool packs_int8(int in, int out);
void pack_bf16(uint16_t* w, int in, int out);
void pack_int8(int8_t* w, int in, int out);
size_t packed_index(int in, int r, int k, int chunk);

// x_bf16: n rows of `in` bf16 values; w: out rows of `in` bf16 values (packed if `packed`);
// y: n x out floats.
void matmul_bf16(const uint16_t* x_bf16, int n, const uint16_t* w, int in, int out, float* y, bool packed = false);

// x_q: n rows of `in` int8 values with per-row scales xs; w: out rows of int8 with scales ws;
// wsum: per weight row, the sum of its first in/64*64 int8 values (the unsigned-activation trick).
void matmul_int8(const int8_t* x_q, const float* xs, int n, const int8_t* w, const float* ws, const int32_t* wsum, int in,
                 int out, float* y, bool packed = false);

// Rounds n*in floats to bfloat16 (nearest even). `in` must be even.
void to_bf16(const float* x, size_t count, uint16_t* out);
// Quantises each row of `in` floats to int8 with a symmetric per-row scale.
void quantize_rows_int8(const float* x, int n, int in, int8_t* q, float* scales);

}  // namespace fdl
