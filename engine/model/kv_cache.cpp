#include "engine/model/kv_cache.h"

#include <cstring>
#include <string>

#include "engine/io/error.h"
#include "engine/io/memory.h"

namespace fdl {

void KVCache::reserve(int positions) {
    if (positions <= capacity) return;
    if (positions > (1 << 30)) throw Error("a KV cache of " + std::to_string(positions) + " positions is too large");
    int cap = capacity ? capacity : 256;
    while (cap < positions) cap *= 2;
    // Checked first: past the free memory, assign() is the OOM killer rather than bad_alloc.
    require_memory(bytes_for(cap), "a KV cache of " + std::to_string(cap) + " positions (" + std::to_string(num_layers) +
                                       " layers x " + std::to_string(kv_dim) + " K and V floats per position)");
    std::vector<float> nk, nv;
    try {
        nk.assign(size_t(num_layers) * cap * kv_dim, 0.f);
        nv.assign(size_t(num_layers) * cap * kv_dim, 0.f);
    } catch (const std::bad_alloc&) {
        throw Error("not enough memory for a KV cache of " + std::to_string(cap) + " positions (" +
                    std::to_string(bytes_for(cap) >> 20) + " MiB)");
    }
    for (int l = 0; l < num_layers && capacity > 0; l++) {
        std::memcpy(nk.data() + size_t(l) * cap * kv_dim, k.data() + size_t(l) * capacity * kv_dim,
                    size_t(capacity) * kv_dim * sizeof(float));
        std::memcpy(nv.data() + size_t(l) * cap * kv_dim, v.data() + size_t(l) * capacity * kv_dim,
                    size_t(capacity) * kv_dim * sizeof(float));
    }
    k.swap(nk);
    v.swap(nv);
    capacity = cap;
}

}  // namespace fdl
