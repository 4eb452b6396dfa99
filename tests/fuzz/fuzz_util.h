// Shared helpers of the fuzz targets: a private scratch folder and whole-file writes.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fuzz {

// A folder of this process, created on first use under $FUZZ_TMPDIR, else /dev/shm (no disk
// I/O), else /tmp; removed at exit.
inline const std::string& scratch_dir() {
    // Never destroyed (a pointer): the atexit handler runs after static destructors would.
    static const std::string* dir = [] {
        const char* env = std::getenv("FUZZ_TMPDIR");
        std::string base = env && *env ? env : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = base + "/fastdllm_fuzz_XXXXXX";
        if (!::mkdtemp(tmpl.data())) std::abort();
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch_dir(), ec);
        });
        return new std::string(tmpl);
    }();
    return *dir;
}

inline void write_file(const std::string& path, const void* data, size_t size) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
}

// Crashes (so that libFuzzer reports the input) when a property does not hold.
#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);  \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)

}  // namespace fuzz
