// How many cores this machine has for the engine's threads.
#pragma once

namespace fdl {

// Physical cores of this machine (hyper-threads share a core's FMA units, so more threads than
// cores only adds contention in GEMM-bound code).
int physical_cores();

}  // namespace fdl
