// A weight matrix of the model (Linear) in the type chosen at load (float32, bfloat16, int8 with
// per-row scales or int4 with a scale per 32 weights), the memory it lives in, and the conversion
// of its input rows for the kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/safetensors.h"

namespace fdl {

// How weight matrices are kept in memory (chosen at load; the checkpoint may differ).
enum class WeightType { F32, BF16, INT8, INT4 };
const char* weight_type_name(WeightType t);
// "f32", "bf16", "int8", "int4"; "auto" gives an empty choice (LoadOptions::weight_type). False
// otherwise.
bool parse_weight_type(const std::string& s, std::optional<WeightType>& out);
// What --dtype accepts, for help texts and error messages: "auto, f32, bf16, int8 or int4".
const char* weight_type_choices();
// Bytes a [out, in] matrix takes in `t` (weights, scales and sums; no bias). INT4 falls back to
// INT8 for a shape its panels cannot hold (int4_fits).
uint64_t weight_matrix_bytes(WeightType t, int in, int out);
bool int4_fits(int in, int out);

// A Linear's input rows in the form its kernels read: bf16, or int8 with per-row scales (and the
// unsigned copy the VNNI kernels read for INT8 weights, the group sums for INT4 weights); F32
// reads the caller's rows as they are. Filled row by row
// (Linear::prepare_rows), so a pass can split the conversion across threads with the norm or
// SwiGLU that produces the rows.
struct LinearInput {
    std::vector<uint16_t> b16;
    std::vector<int8_t> q8;
    std::vector<uint8_t> u8;
    std::vector<float> scales;
    std::vector<int32_t> xg;  // INT4: -8 x the sum of each group of 32 inputs (kernels.h)
};

// Memory for weight matrices. resize() leaves new elements uninitialised (the matrices are filled
// whole right after; zeroing them first would be one more pass over every byte of the weights),
// and a matrix of 2 MB or more is placed on 2 MB boundaries with transparent huge pages asked for
// (weight_memory.cpp): one-token passes stream every weight, and run slower on 4 KB pages (more
// TLB misses along that stream).
void* allocate_weights(size_t bytes);
void free_weights(void* p);

template <class T>
struct WeightAllocator {
    using value_type = T;
    WeightAllocator() = default;
    template <class U>
    WeightAllocator(const WeightAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(allocate_weights(n * sizeof(T))); }
    void deallocate(T* p, size_t) { free_weights(p); }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) == 0) ::new (static_cast<void*>(p)) U;
        else ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    template <class U>
    bool operator==(const WeightAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const WeightAllocator<U>&) const { return false; }
};

// A weight matrix [out, in] (row-major, like the checkpoint) and its optional bias.
struct Linear {
    int in = 0, out = 0;
    WeightType type = WeightType::F32;
    std::vector<float> w;        // F32
    std::vector<uint16_t, WeightAllocator<uint16_t>> w16;  // BF16
    std::vector<int8_t, WeightAllocator<int8_t>> w8;      // INT8, with one scale per row and the row sums (for VNNI)
    std::vector<uint8_t, WeightAllocator<uint8_t>> w4;    // INT4: codes and scales in panels (kernels.h)
    std::vector<float> scale;
    std::vector<int32_t> wsum;
    std::vector<float> b;
    bool packed = false;  // w/w16/w8 in the kernels' 16-row panel layout (kernels.h); w4 always is
    // Stores a float32 [out, in] matrix in `type` (replacing whatever the Linear held). INT4
    // becomes INT8 where the shape does not fit int4 panels (int4_fits).
    void set(const std::vector<float>& m, WeightType type);
    void set_f32(std::vector<float>&& m);       // the same, keeping m's buffer
    void clear_weights();                       // drops the weights of every type (keeps the bias)
    // BF16 kept as it is (no rounding): rows[r] holds row r's `in` values (little-endian, any
    // alignment, e.g. inside a mapped file).
    // `pack` false keeps the rows row-major (a matrix that is only looked up by rows).
    void set_bf16_rows(const uint8_t* const* rows, bool pack = true);
    // INT8 or INT4 quantised straight from a checkpoint's rows (`in` values each of `file`, BF16,
    // F16 or F32, any alignment), 16 rows at a time on the thread pool: no float32 copy of the
    // whole matrix. The same bytes as set() on the rows converted to float32.
    void set_quantized_rows(const uint8_t* const* rows, DType file, WeightType type, bool pack = true);
    // The same in slabs, so that a loader can let go of each slab's rows of the file: begin (the
    // matrix allocated in `type`, INT4 falling back to INT8 as in set()), rows [r0, r1) (multiples
    // of 16, or r1 = out), in any order, then end.
    void begin_quantized(WeightType type, bool pack = true);
    void quantize_rows(const uint8_t* const* rows, DType file, int r0, int r1);
    void end_quantized();
    // y[n, out] = x[n, in] @ w^T (+ b)
    void apply(const float* x, int n, float* y) const;
    // The same in three steps: make room in li for n rows (before a job), convert rows [r0, r1)
    // of x (x points at row 0; threads may convert disjoint ranges at once), then multiply the n
    // prepared rows.
    void reserve_input(LinearInput& li, int n) const;
    void prepare_rows(const float* x, int r0, int r1, LinearInput& li) const;
    void apply_prepared(const float* x, const LinearInput& li, int n, float* y) const;  // F32 reads x
    // Row r as float32 (embedding lookup).
    void row(int r, float* dst) const;
    size_t bytes() const;
};

}  // namespace fdl
