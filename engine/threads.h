// Thread count for the engine's kernels (engine/thread_pool.h) and for OpenBLAS / OpenMP.
#pragma once

namespace fdl {

// Physical cores of this machine (hyper-threads share a core's FMA units, so more threads than
// cores only adds contention in GEMM-bound code).
int physical_cores();
// Applies n threads to the engine's pool, OpenMP and OpenBLAS; n <= 0 means physical_cores().
int set_threads(int n);

}  // namespace fdl
