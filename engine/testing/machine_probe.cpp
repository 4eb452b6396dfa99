#include "engine/testing/machine_probe.h"

#include "engine/io/clock.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <vector>

namespace fdl {

static double now() { return now_seconds(); }

std::string cpu_model_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

double measure_read_bandwidth_gbs(int threads) {
    const size_t n = (size_t(1) << 30) / sizeof(float);
    std::vector<float> buf(n, 1.0f);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        const double t0 = now();
        float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            // 64 independent sums per thread: the compiler keeps them in vector registers, so the
            // loop is bound by memory, not by the latency of one chain of additions.
            float acc[64] = {};
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i += 64)
                for (int k = 0; k < 64; k++) acc[k] += buf[i + k];
            for (float a : acc) total += a;
        }
        const double dt = now() - t0;
        if (total < 0) return 0;  // keeps the loop from being optimised away
        best = std::max(best, double(n * sizeof(float)) / dt / 1e9);
    }
    return best;
}

double measure_sgemm_gflops() {
    const int n = 2048;
    std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
        best = std::max(best, 2.0 * n * n * n / (now() - t0) / 1e9);
    }
    return best;
}

}  // namespace fdl
