// Where the default model is found, and what -m names.
#include "app/model_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "engine/io/error.h"
#include "hub/cache.h"
#include "hub/settings.h"

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

std::string resolve_model_dir(const std::string& value) {
    const std::string v = value.empty() ? default_model_dir() : value;
    struct stat st {};
    if (::stat(v.c_str(), &st) == 0 || !hub::looks_like_repo_ref(v)) return v;
    hub::RepoRef ref;
    if (!hub::parse_repo_ref(v, ref)) return v;
    std::string why;
    const std::string snap = hub::find_snapshot(hub::HubSettings::from_environment().cache_dir, ref, &why);
    if (snap.empty()) throw Error(v + ": not found: no such folder, and " + why + "; download it with: fastdllm pull " + ref.text());
    return snap;
}

}  // namespace fdl::cli
