#include "engine/model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "engine/io/safetensors.h"
#include "engine/kernels/kernels.h"
#include "engine/parallel/thread_pool.h"

namespace fdl {

const char* weight_type_name(WeightType t) {
    switch (t) {
        case WeightType::F32: return "f32";
        case WeightType::BF16: return "bf16";
        case WeightType::INT8: return "int8";
        case WeightType::INT4: return "int4";
    }
    return "?";
}

const char* weight_type_choices() { return "auto, f32, bf16, int8 or int4"; }

bool int4_fits(int in, int out) { return packs_int4(in, out); }

uint64_t weight_matrix_bytes(WeightType t, int in, int out) {
    const uint64_t n = uint64_t(in) * uint64_t(out);
    switch (t) {
        case WeightType::F32: return 4 * n;
        case WeightType::BF16: return 2 * n;
        case WeightType::INT4:
            if (int4_fits(in, out)) return int4_bytes(in, out);
            [[fallthrough]];
        case WeightType::INT8: return n + 8 * uint64_t(out);  // a scale and a row sum per row
    }
    return 4 * n;
}

bool parse_weight_type(const std::string& s, std::optional<WeightType>& out) {
    if (s == "auto") out.reset();
    else if (s == "f32") out = WeightType::F32;
    else if (s == "bf16") out = WeightType::BF16;
    else if (s == "int8") out = WeightType::INT8;
    else if (s == "int4") out = WeightType::INT4;
    else return false;
    return true;
}

void Linear::clear_weights() {
    w.clear();
    w16.clear();
    w8.clear();
    w4.clear();
    scale.clear();
    wsum.clear();
}

void Linear::set_f32(std::vector<float>&& m) {
    type = WeightType::F32;
    clear_weights();
    w = std::move(m);
    packed = packs_f32(in, out);
    if (packed) pack_f32(w.data(), in, out);
}

void Linear::set_bf16_rows(const uint8_t* const* rows, bool pack) {
    type = WeightType::BF16;
    clear_weights();
    w16.resize(size_t(out) * size_t(in));
    packed = pack && packs_bf16(in, out);
    pack_bf16_rows(rows, in, out, packed, w16.data());
}

// body(r0, r1) over the rows of an [out, in] matrix, on the thread pool when it is large enough to
// be worth it (loading; every row is converted on its own, so the split never changes a bit).
template <class Body>
static void by_rows(int out, int in, Body&& body) {
    const int grain = std::max(1, (1 << 16) / std::max(1, in));
    parallel_ranges(out, grain, long(out) * in >= (1L << 20), [&](int r0, int r1, int) { body(r0, r1); });
}

// Row r of a checkpoint tensor (`in` values of `file`, any alignment) as float32.
static void row_to_f32(const uint8_t* src, DType file, int in, float* dst) {
    if (file == DType::F32) {
        std::memcpy(dst, src, size_t(in) * 4);
        return;
    }
    for (int k = 0; k < in; k++) {
        uint16_t h;
        std::memcpy(&h, src + 2 * size_t(k), 2);
        dst[k] = file == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
}

// INT4 panels of rows [r0, r1) (multiples of 16) from 16 float32 rows at a time; row_of(r, dst)
// writes row r. l.w4 is allocated.
template <class RowOf>
static void quantize_int4(Linear& l, int r0, int r1, RowOf&& row_of) {
    const int in = l.in;
    const size_t pb = int4_panel_bytes(in);
    parallel_chunks((r1 - r0) / kPanel, long(r1 - r0) * in >= (1L << 20), [&](int c, int) {
        thread_local std::vector<float> rows;
        rows.resize(size_t(kPanel) * in);
        const int p = r0 / kPanel + c;
        for (int r = 0; r < kPanel; r++) row_of(p * kPanel + r, rows.data() + size_t(r) * in);
        quantize_int4_panel(rows.data(), in, l.w4.data() + size_t(p) * pb);
    });
}

// INT8 rows [r0, r1) from float32 rows (row_of(r, scratch) returns row r, in scratch or not) with
// their scales and the sums the VNNI kernels need (over `covered` inputs).
template <class RowOf>
static void quantize_int8_rows(Linear& l, int r0, int r1, int covered, RowOf&& row_of) {
    thread_local std::vector<float> row;
    row.resize(size_t(l.in));
    for (int o = r0; o < r1; o++) {
        const float* src = row_of(o, row.data());
        int8_t* q = l.w8.data() + size_t(o) * l.in;
        quantize_rows_int8(src, 1, l.in, q, l.scale.data() + o);
        int32_t s = 0;
        for (int k = 0; k < covered; k++) s += q[k];
        l.wsum[size_t(o)] = s;
    }
}

void Linear::begin_quantized(WeightType t, bool pack) {
    clear_weights();
    if (t == WeightType::INT4 && int4_fits(in, out)) {
        type = WeightType::INT4;
        packed = true;
        w4.resize(int4_bytes(in, out));
        return;
    }
    type = WeightType::INT8;
    w8.resize(size_t(out) * size_t(in));
    scale.resize(size_t(out));
    wsum.resize(size_t(out));
    packed = pack && packs_int8(in, out);
}

void Linear::quantize_rows(const uint8_t* const* rows, DType file, int r0, int r1) {
    if (type == WeightType::INT4) {
        quantize_int4(*this, r0, r1, [&](int r, float* dst) { row_to_f32(rows[r], file, in, dst); });
        return;
    }
    const int covered = packed ? in : in / 64 * 64;  // what the VNNI kernel covers
    parallel_ranges(r1 - r0, std::max(1, (1 << 16) / std::max(1, in)), long(r1 - r0) * in >= (1L << 20),
                    [&](int a, int b, int) {
                        quantize_int8_rows(*this, r0 + a, r0 + b, covered, [&](int r, float* dst) {
                            row_to_f32(rows[r], file, in, dst);
                            return static_cast<const float*>(dst);
                        });
                    });
}

void Linear::end_quantized() {
    if (type == WeightType::INT8 && packed) pack_int8(w8.data(), in, out);
}

void Linear::set_quantized_rows(const uint8_t* const* rows, DType file, WeightType t, bool pack) {
    begin_quantized(t, pack);
    quantize_rows(rows, file, 0, out);
    end_quantized();
}

void Linear::set(const std::vector<float>& m, WeightType t) {
    if (t == WeightType::INT4 && !int4_fits(in, out)) t = WeightType::INT8;
    type = t;
    packed = false;
    clear_weights();
    if (t == WeightType::INT4) {
        packed = true;
        w4.resize(int4_bytes(in, out));
        quantize_int4(*this, 0, out, [&](int r, float* dst) { std::memcpy(dst, m.data() + size_t(r) * in, size_t(in) * 4); });
    } else if (t == WeightType::F32) {
        w = m;
        packed = packs_f32(in, out);
        if (packed) pack_f32(w.data(), in, out);
    } else if (t == WeightType::BF16) {
        w16.resize(m.size());
        by_rows(out, in, [&](int r0, int r1) { to_bf16(m.data() + size_t(r0) * in, size_t(r1 - r0) * in, w16.data() + size_t(r0) * in); });
        packed = packs_bf16(in, out);
        if (packed) pack_bf16(w16.data(), in, out);
    } else {
        w8.resize(m.size());
        scale.resize(size_t(out));
        wsum.resize(size_t(out));
        packed = packs_int8(in, out);
        const int covered = packed ? in : in / 64 * 64;  // what the VNNI kernel covers
        by_rows(out, in, [&](int r0, int r1) {
            quantize_int8_rows(*this, r0, r1, covered, [&](int r, float*) { return m.data() + size_t(r) * in; });
        });
        if (packed) pack_int8(w8.data(), in, out);
    }
}

void Linear::reserve_input(LinearInput& li, int n) const {
    const size_t len = size_t(n) * in;
    if (type == WeightType::BF16 && li.b16.size() < len) li.b16.resize(len);
    if (type == WeightType::INT8 || type == WeightType::INT4) {
        if (li.q8.size() < len) li.q8.resize(len);
        if (li.scales.size() < size_t(n)) li.scales.resize(size_t(n));
    }
    if (type == WeightType::INT8 && int8_reads_unsigned() && li.u8.size() < len) li.u8.resize(len);
    if (type == WeightType::INT4 && li.xg.size() < size_t(n) * int4_groups(in)) li.xg.resize(size_t(n) * int4_groups(in));
}

void Linear::prepare_rows(const float* x, int r0, int r1, LinearInput& li) const {
    const size_t off = size_t(r0) * in, len = size_t(r1 - r0) * in;
    if (type == WeightType::BF16) to_bf16(x + off, len, li.b16.data() + off);
    if (type == WeightType::INT8) {
        quantize_rows_int8(x + off, r1 - r0, in, li.q8.data() + off, li.scales.data() + r0);
        if (int8_reads_unsigned()) int8_to_unsigned(li.q8.data() + off, len, li.u8.data() + off);
    }
    if (type == WeightType::INT4) {
        quantize_rows_int8(x + off, r1 - r0, in, li.q8.data() + off, li.scales.data() + r0);
        int4_group_sums(li.q8.data() + off, r1 - r0, in, li.xg.data() + size_t(r0) * int4_groups(in));
    }
}

void Linear::apply_prepared(const float* x, const LinearInput& li, int n, float* y) const {
    if (type == WeightType::F32) {
        if (packed) matmul_f32_packed(x, n, w.data(), in, out, y);
        else if (matmul_f32_small(x, n, w.data(), in, out, y)) {
        } else if (n == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.f, w.data(), in, x, 1, 0.f, y, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, in, w.data(), in, 0.f, y, out);
    } else if (type == WeightType::BF16) {
        matmul_bf16(li.b16.data(), n, w16.data(), in, out, y, packed);
    } else if (type == WeightType::INT8) {
        matmul_int8(li.q8.data(), li.scales.data(), n, w8.data(), scale.data(), wsum.data(), in, out, y, packed,
                    int8_reads_unsigned() ? li.u8.data() : nullptr);
    } else {
        matmul_int4(li.q8.data(), li.scales.data(), li.xg.data(), n, w4.data(), in, out, y);
    }
    if (!b.empty()) {
        for (int i = 0; i < n; i++) {
            float* row = y + size_t(i) * out;
            for (int j = 0; j < out; j++) row[j] += b[j];
        }
    }
}

void Linear::apply(const float* x, int n, float* y) const {
    thread_local LinearInput li;  // grows to the largest pass, then never again
    reserve_input(li, n);
    prepare_rows(x, 0, n, li);
    apply_prepared(x, li, n, y);
}

// Row r of a weight matrix, through `conv`. Packed rows are read a group of G inputs at a time
// (G consecutive values, then the next group 16 * G further), not element by element through
// panel_index: embedding lookups of a 32-token pass were 2% of an int8 demo pass that way.
template <int G, typename T, typename Conv>
static void gather_row(const T* w, int in, int r, bool packed, float* dst, Conv conv) {
    if (!packed) {
        for (int k = 0; k < in; k++) dst[k] = conv(w[size_t(r) * in + k]);
        return;
    }
    const T* p = w + panel_index(in, r, 0, G);
    for (int k = 0; k < in; k += G, p += size_t(kPanel) * G)
        for (int g = 0; g < G; g++) dst[k + g] = conv(p[g]);
}

void Linear::row(int r, float* dst) const {
    if (type == WeightType::F32) gather_row<1>(w.data(), in, r, packed, dst, [](float v) { return v; });
    else if (type == WeightType::BF16) gather_row<2>(w16.data(), in, r, packed, dst, bf16_to_f32);
    else if (type == WeightType::INT4) int4_row(w4.data(), in, r, dst);
    else {
        const float s = scale[size_t(r)];
        gather_row<4>(w8.data(), in, r, packed, dst, [s](int8_t v) { return v * s; });
    }
}

size_t Linear::bytes() const {
    return w.size() * 4 + w16.size() * 2 + w8.size() + w4.size() + scale.size() * 4 + wsum.size() * 4 + b.size() * 4;
}

}  // namespace fdl
