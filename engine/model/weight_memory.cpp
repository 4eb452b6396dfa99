// Allocation of weight matrices (WeightAllocator in linear.h).
#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "engine/model/linear.h"

namespace fdl {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}

void* allocate_weights(size_t bytes) {
    if (bytes < kHugePage) {
        void* p = std::malloc(bytes ? bytes : 1);
        if (!p) throw std::bad_alloc();
        return p;
    }
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (!p) throw std::bad_alloc();
    // Huge pages for the whole 2 MB pages the matrix fills; its last, partial one stays in 4 KB
    // pages, so that the unused rest of it is never resident (about 1 MB per matrix, 0.1 GB for a
    // 7B model's 114 matrices).
    (void)madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice: without THP the pages stay 4 KB
    return p;
}

void free_weights(void* p) { std::free(p); }

}  // namespace fdl
