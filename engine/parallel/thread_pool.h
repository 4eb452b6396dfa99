// The engine's worker threads. A job is a count of chunks; the calling thread and the workers
// claim chunks one at a time from a shared counter until none is left, so a thread that the OS
// has taken off its core (another program on a 2-core machine, a hypervisor stealing the vCPU)
// only delays the chunk it holds: the others take the rest. With OpenMP's static split and
// spinning barriers such a pass waited a whole scheduler time slice per matrix, a thousand times
// its own length on a busy 2-core machine. Idle workers spin for a millisecond, then sleep.
#pragma once

#include <cstdint>

namespace fdl {

// Threads that run jobs (the caller included); n <= 0 means one per physical core.
void set_pool_threads(int n);
int pool_threads();

namespace detail {
void run_chunks(int chunks, void (*body)(void*, int, int), void* ctx);
}

// Calls body(chunk, worker) for every chunk in [0, chunks), on up to pool_threads() threads;
// worker (0 = the caller, < pool_threads()) is for per-thread scratch. Returns when all chunks
// are done. Runs serially on the caller when `parallel` is false, when there is one chunk, and
// inside a chunk of another job (no nesting). The split never changes the results: every chunk
// computes its own outputs. Bodies must not throw (check inputs before the job, as OpenMP
// regions required too).
template <class Body>
void parallel_chunks(int chunks, bool parallel, Body&& body) {
    if (chunks <= 0) return;
    auto call = [](void* ctx, int chunk, int worker) { (*static_cast<Body*>(ctx))(chunk, worker); };
    if (!parallel || chunks == 1) {
        for (int c = 0; c < chunks; c++) body(c, 0);
        return;
    }
    detail::run_chunks(chunks, call, &body);
}

// body(i0, i1, worker) over [0, n) in ranges of `grain` items (the last one shorter).
template <class Body>
void parallel_ranges(int n, int grain, bool parallel, Body&& body) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int chunks = (n + grain - 1) / grain;
    parallel_chunks(chunks, parallel, [&](int c, int worker) {
        const int i0 = c * grain;
        body(i0, i0 + grain < n ? i0 + grain : n, worker);
    });
}

// Ranges for n items that give each thread a few chunks to balance with (n / (4 x threads)).
int balanced_grain(int n);

}  // namespace fdl
