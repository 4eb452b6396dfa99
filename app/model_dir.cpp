// Where the default model is found.
#include "app/model_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace fdl::cli {

std::string default_model_dir() {
    auto is_dir = [](const std::string& p) {
        struct stat st {};
        return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    };
    if (const char* env = std::getenv("FASTDLLM_MODEL")) return env;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        std::string dir(exe);
        dir = dir.substr(0, dir.find_last_of('/'));
        for (const char* rel : {"/../assets/models/demo-dllm", "/assets/models/demo-dllm", "/../share/fastdllm/models/demo-dllm"})
            if (is_dir(dir + rel)) return dir + rel;
    }
#ifdef FASTDLLM_SOURCE_DIR
    if (is_dir(FASTDLLM_SOURCE_DIR "/assets/models/demo-dllm")) return FASTDLLM_SOURCE_DIR "/assets/models/demo-dllm";
#endif
    return "assets/models/demo-dllm";
}

}  // namespace fdl::cli
