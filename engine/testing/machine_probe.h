// Measures what this machine allows, so benchmark numbers can be read against it: CPU model,
// memory read bandwidth, and the peak float32 GEMM rate OpenBLAS reaches.
#pragma once
#include <string>

namespace fdl {

std::string cpu_model_name();
double measure_read_bandwidth_gbs(int threads);  // GB/s summing a 1 GiB buffer, best of 5
double measure_sgemm_gflops();                   // 2048^3 SGEMM, best of 3

}  // namespace fdl
