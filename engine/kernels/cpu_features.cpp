// What the CPU offers, checked once at run time, and the name of the kernel path that follows.
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

#include <cpuid.h>
#include <cstdlib>
#include <cstring>

namespace fdl {

using detail::has_avx2_fma;

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = [] {
        CpuFeatures c;
        __builtin_cpu_init();
        c.avx512f = __builtin_cpu_supports("avx512f");
        c.avx512bf16 = __builtin_cpu_supports("avx512bf16") && c.avx512f;
        c.avx512vnni = __builtin_cpu_supports("avx512vnni") && c.avx512f;
        c.avx2 = __builtin_cpu_supports("avx2");
        c.fma = __builtin_cpu_supports("fma");
        // (clang 14's __builtin_cpu_supports does not know "f16c": CPUID leaf 1, ECX bit 29)
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        c.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
        // FASTDLLM_KERNELS=avx2|portable pretends the CPU has less, so the tests can run the
        // other code paths on an AVX-512 machine.
        const char* force = std::getenv("FASTDLLM_KERNELS");
        if (force && (std::strcmp(force, "avx2") == 0 || std::strcmp(force, "portable") == 0)) {
            c.avx512f = c.avx512bf16 = c.avx512vnni = false;
            if (std::strcmp(force, "portable") == 0) c.avx2 = c.fma = c.f16c = false;
        }
        return c;
    }();
    return f;
}

const char* kernel_path_name() {
    const CpuFeatures& f = cpu_features();
    if (f.avx512bf16 && f.avx512vnni) return "avx512-bf16+vnni";
    if (f.avx512bf16) return "avx512-bf16";
    if (f.avx512f) return "avx512f";
    if (has_avx2_fma()) return "avx2";
    return "portable";
}

}  // namespace fdl
