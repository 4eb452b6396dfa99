// Matrix kernels for the weight formats the engine keeps: y[n, out] = x[n, in] @ W[out, in]^T.
// F32 uses the panel kernel below with AVX-512 (faster than OpenBLAS at every pass size,
// 1 to 512 tokens), else OpenBLAS. BF16 (weights and activations rounded to bfloat16, float32
// accumulation) uses AVX512-BF16 dot products when the CPU has them, checked at run time, else
// AVX2+FMA, else a portable loop. INT8 keeps one float
// scale per weight row; activations are quantised per token to int8 and multiplied with
// AVX512-VNNI, else AVX2, else portably. INT4 keeps a float16 scale per 32 weights of a row in a
// panel layout of its own (below) and multiplies the same int8 activations.
// FASTDLLM_KERNELS=avx2|portable forces the lesser paths.
// Sources: cpu_features.cpp, packing.cpp, matmul_f32/bf16/int8/int4.cpp, attention.cpp, elementwise.cpp;
// what they share, kernels_internal.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fdl {

struct CpuFeatures {
    bool avx512f = false, avx512bf16 = false, avx512vnni = false, avx2 = false, fma = false, f16c = false;
};
const CpuFeatures& cpu_features();
const char* kernel_path_name();  // "avx512-bf16", "avx2", ... (what the BF16/INT8 kernels use here)

// F32 on row-major weights (those packs_f32 does not take) for passes of at most 8 tokens with
// AVX-512; returns false (nothing done) otherwise, and the caller uses OpenBLAS.
bool matmul_f32_small(const float* x, int n, const float* w, int in, int out, float* y);

// Weight layouts. The AVX-512 kernels read weights repacked into panels of 16 rows (see
// packing.cpp). packs_*() says whether that layout is used for a matrix of this shape on this CPU;
// pack_*() rewrites a row-major matrix in place; panel_index() is where element (r, k) then lives
// (group: 1 for f32, 2 for bf16, 4 for int8). Packed INT8 needs wsum over all `in` inputs.
constexpr int kPanel = 16;  // rows per panel
bool packs_f32(int in, int out);
bool packs_bf16(int in, int out);
bool packs_int8(int in, int out);
void pack_f32(float* w, int in, int out);
void pack_bf16(uint16_t* w, int in, int out);
void pack_int8(int8_t* w, int in, int out);
// Fills dst ([out, in] BF16) from rows given one by one (rows[r]: `in` little-endian values, any
// alignment), in the panel layout when `panels` (packs_bf16 said so), else row-major; on the
// thread pool, a panel per chunk.
void pack_bf16_rows(const uint8_t* const* rows, int in, int out, bool panels, uint16_t* dst);
size_t panel_index(int in, int r, int k, int group);

// F32 with weights packed by pack_f32 (AVX-512 only: packs_f32 must hold), any token count.
void matmul_f32_packed(const float* x, int n, const float* w, int in, int out, float* y);

// x_bf16: n rows of `in` bf16 values; w: out rows of `in` bf16 values (packed if `packed`);
// y: n x out floats.
void matmul_bf16(const uint16_t* x_bf16, int n, const uint16_t* w, int in, int out, float* y, bool packed = false);

// x_q: n rows of `in` int8 values with per-row scales xs; w: out rows of int8 with scales ws;
// wsum: per weight row, the sum of its first in/64*64 int8 values (the unsigned-activation trick;
// all `in` values when packed).
// x_u: x_q + 128 as unsigned bytes (int8_to_unsigned), which the VNNI kernels read; made here
// when null.
void matmul_int8(const int8_t* x_q, const float* xs, int n, const int8_t* w, const float* ws, const int32_t* wsum, int in,
                 int out, float* y, bool packed = false, const uint8_t* x_u = nullptr);
// Whether matmul_int8 reads x_u on this CPU, and the conversion itself.
bool int8_reads_unsigned();
void int8_to_unsigned(const int8_t* x, size_t count, uint8_t* out);

// INT4 (matmul_int4.cpp): weights in groups of kInt4Group consecutive inputs of a row, each group
// with one float16 scale d and 4-bit codes q in [0, 15] (the weight is (q - 8) * d), always in
// panels of 16 rows, on every CPU: packs_int4 says whether a matrix's shape has that layout
// (rows a multiple of 16, inputs of 8). A panel is a run of units of 64 inputs (the last one may
// be shorter): the unit's codes, then 64 bytes holding its two groups' 16 scales each. Each
// 64-byte block of codes covers 8 inputs of the 16 rows: byte 4r + i holds row r's input i in its
// low nibble and input 4 + i in its high nibble, so one masked load gives vpdpbusd its 16 rows x
// 4 inputs twice. Activations are quantised to int8 per token (quantize_rows_int8) and multiplied
// as signed bytes with the unsigned codes; the 8 * sum(x) that the codes' offset adds is taken
// off through xg (int4_group_sums), which starts each group's integer sum.
constexpr int kInt4Group = 32;
bool packs_int4(int in, int out);
size_t int4_panel_bytes(int in);          // bytes of one panel of 16 rows
size_t int4_bytes(int in, int out);       // of the whole matrix (packs_int4 must hold)
// Quantises 16 rows of `in` floats (row r at rows + r * in) into one panel at `panel`.
void quantize_int4_panel(const float* rows, int in, uint8_t* panel);
// xg[t * groups + g] = -8 * (sum of token t's int8 inputs in group g), groups = ceil(in / 32).
int int4_groups(int in);
void int4_group_sums(const int8_t* x_q, int n, int in, int32_t* xg);
// y[n, out] = dequantised x[n, in] @ W^T: x_q, xs as for matmul_int8, xg from int4_group_sums.
void matmul_int4(const int8_t* x_q, const float* xs, const int32_t* xg, int n, const uint8_t* w, int in, int out,
                 float* y);
// The portable loop of matmul_int4 whatever the CPU: the tests check the SIMD paths against it.
void matmul_int4_portable(const int8_t* x_q, const float* xs, const int32_t* xg, int n, const uint8_t* w, int in,
                          int out, float* y);
// Row r of a packed INT4 matrix as float32 ((q - 8) * d): the tied embedding's lookup.
void int4_row(const uint8_t* w, int in, int r, float* dst);

// One query row of attention: o[hd] = softmax(scale * q . K[j]) . V[j] over keys j < len, where
// key j's vectors start at K + j*stride and V + j*stride; s: scratch for len scores.
void attend_row(const float* q, const float* K, const float* V, size_t stride, int len, int hd, float scale, float* s,
                float* o);

// Up to 16 query rows that share one KV head: row r's query q[r], output o[r], keys j < limits[r]
// (the same function as attend_row for each row, summed in another order). Much faster than
// attend_row per row on AVX-512 when several rows attend to the same keys (a diffusion
// sub-block or block, a prompt); s: scratch of max(limits) floats, used only by the per-row
// fallback (other CPUs, or head dims that are not a multiple of 16 up to kMaxHeadDim).
constexpr int kMaxHeadDim = 256;
void attend_rows16(const float* const* q, float* const* o, const int* limits, int nrows, const float* K, const float* V,
                   size_t stride, int hd, float scale, float* s);

// SwiGLU's elementwise part on the stacked gate/up projection: gu holds n rows of
// [gate (inter) | up (inter)]; out[i, j] = silu(gate[i, j]) * up[i, j]. out may not alias gu. One thread:
// Model::forward splits the rows across the threads.
void swiglu_rows(const float* gu, int n, int inter, float* out);

// The largest of x[0, n), NaNs skipped (-inf if there is none); and the sum of exp(x[j] - mx)
// over j < n, in double (AVX-512: float exponentials within a few ulps, many times faster than a
// scalar loop of double exponentials; the sampler runs this once per masked cell).
float max_value(const float* x, int n);
double exp_sum(const float* x, int n, float mx);

// Rounds n*in floats to bfloat16 (nearest even). `in` must be even.
void to_bf16(const float* x, size_t count, uint16_t* out);
// Quantises each row of `in` floats to int8 with a symmetric per-row scale.
void quantize_rows_int8(const float* x, int n, int in, int8_t* q, float* scales);

}  // namespace fdl
