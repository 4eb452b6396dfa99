#include "engine/parallel/threads.h"

#include <cblas.h>
#include <omp.h>

#include "engine/parallel/thread_pool.h"

namespace fdl {

int set_threads(int n) {
    if (n <= 0) n = physical_cores();
    set_pool_threads(n);     // the engine's own kernels
    omp_set_num_threads(n);  // OpenBLAS (f32 without AVX-512) and the machine probe
    openblas_set_num_threads(n);
    return n;
}

}  // namespace fdl
