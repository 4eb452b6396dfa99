#include "engine/model/linear.h"

#include <cblas.h>

#include <algorithm>

#include "engine/io/safetensors.h"
#include "engine/kernels/kernels.h"
#include "engine/parallel/thread_pool.h"

namespace fdl {

const char* weight_type_name(WeightType t) {
    return t == WeightType::F32 ? "f32" : t == WeightType::BF16 ? "bf16" : "int8";
}

bool parse_weight_type(const std::string& s, std::optional<WeightType>& out) {
    if (s == "auto") out.reset();
    else if (s == "f32") out = WeightType::F32;
    else if (s == "bf16") out = WeightType::BF16;
    else if (s == "int8") out = WeightType::INT8;
    else return false;
    return true;
}

void Linear::set_f32(std::vector<float>&& m) {
    type = WeightType::F32;
    w16.clear();
    w8.clear();
    scale.clear();
    wsum.clear();
    w = std::move(m);
    packed = packs_f32(in, out);
    if (packed) pack_f32(w.data(), in, out);
}

void Linear::set_bf16_rows(const uint8_t* const* rows, bool pack) {
    type = WeightType::BF16;
    w.clear();
    w8.clear();
    scale.clear();
    wsum.clear();
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

void Linear::set(const std::vector<float>& m, WeightType t) {
    type = t;
    packed = false;
    w.clear();
    w16.clear();
    w8.clear();
    scale.clear();
    wsum.clear();
    if (t == WeightType::F32) {
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
            quantize_rows_int8(m.data() + size_t(r0) * in, r1 - r0, in, w8.data() + size_t(r0) * in, scale.data() + r0);
            for (int o = r0; o < r1; o++) {
                int32_t s = 0;
                for (int k = 0; k < covered; k++) s += w8[size_t(o) * in + k];
                wsum[size_t(o)] = s;
            }
        });
        if (packed) pack_int8(w8.data(), in, out);
    }
}

void Linear::reserve_input(LinearInput& li, int n) const {
    const size_t len = size_t(n) * in;
    if (type == WeightType::BF16 && li.b16.size() < len) li.b16.resize(len);
    if (type == WeightType::INT8) {
        if (li.q8.size() < len) li.q8.resize(len);
        if (int8_reads_unsigned() && li.u8.size() < len) li.u8.resize(len);
        if (li.scales.size() < size_t(n)) li.scales.resize(size_t(n));
    }
}

void Linear::prepare_rows(const float* x, int r0, int r1, LinearInput& li) const {
    const size_t off = size_t(r0) * in, len = size_t(r1 - r0) * in;
    if (type == WeightType::BF16) to_bf16(x + off, len, li.b16.data() + off);
    if (type == WeightType::INT8) {
        quantize_rows_int8(x + off, r1 - r0, in, li.q8.data() + off, li.scales.data() + r0);
        if (int8_reads_unsigned()) int8_to_unsigned(li.q8.data() + off, len, li.u8.data() + off);
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
    } else {
        matmul_int8(li.q8.data(), li.scales.data(), n, w8.data(), scale.data(), wsum.data(), in, out, y, packed,
                    int8_reads_unsigned() ? li.u8.data() : nullptr);
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
    else {
        const float s = scale[size_t(r)];
        gather_row<4>(w8.data(), in, r, packed, dst, [s](int8_t v) { return v * s; });
    }
}

size_t Linear::bytes() const {
    return w.size() * 4 + w16.size() * 2 + w8.size() + scale.size() * 4 + wsum.size() * 4 + b.size() * 4;
}

}  // namespace fdl
