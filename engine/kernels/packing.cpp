// The panel layout that the AVX-512 kernels read: which matrices use it, and the repacking.
//
// Weights are repacked at load into panels of 16 rows. Inside a panel, for each group of G
// consecutive inputs (G = 2 for bf16, 4 for int8: what one 32-bit lane of vdpbf16ps / vpdpbusd
// consumes), the 16 rows' G values sit side by side: 64 bytes, one zmm register, one output row
// per lane. A pass then computes 16 outputs per register with the token's G inputs broadcast:
// no horizontal sums at the end (which cost as much as the dot products themselves when `in` is
// a few hundred), the same weight vector serves up to 6 tokens from registers, and each panel is
// one long linear stream for the prefetchers (row-major rows of 1.5-3 KB read four at a time are
// not). Speed figures: docs/benchmarks.md.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include <cstring>
#include <vector>

namespace fdl {

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

}  // namespace fdl
