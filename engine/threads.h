// Thread count for OpenMP loops and OpenBLAS GEMMs (one shared pool with the OpenMP build).
#pragma once

namespace fdl {

// Physical cores of this machine (hyper-threads share a core's FMA units, so more threads than
// cores only adds contention in GEMM-bound code).
int physical_cores();
// Applies n threads to OpenMP and OpenBLAS; n <= 0 means physical_cores().
int set_threads(int n);

}  // namespace fdl
