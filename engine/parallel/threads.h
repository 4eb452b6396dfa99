// Thread count for the engine's kernels (thread_pool.h) and for OpenBLAS / OpenMP.
#pragma once

#include "engine/parallel/cpu_cores.h"

namespace fdl {

// Applies n threads to the engine's pool, OpenMP and OpenBLAS; n <= 0 means physical_cores().
int set_threads(int n);

}  // namespace fdl
