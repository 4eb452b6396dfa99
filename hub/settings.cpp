#include "hub/settings.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fdl::hub {

namespace {

std::string trim(std::string s) {
    while (!s.empty() && std::isspace((unsigned char)s.back())) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace((unsigned char)s[i])) i++;
    return s.substr(i);
}

std::string expand_user(const std::string& p, const std::string& home) {
    if (p == "~") return home;
    if (p.rfind("~/", 0) == 0) return home + p.substr(1);
    return p;
}

// huggingface_hub's reading of a boolean variable.
bool is_true(const char* v) {
    if (!v) return false;
    std::string s = trim(v);
    for (char& c : s) c = char(std::toupper((unsigned char)c));
    return s == "1" || s == "ON" || s == "YES" || s == "TRUE";
}

}  // namespace

HubSettings HubSettings::from_environment(const Getenv& getenv_fn) {
    auto env = [&](const char* name) -> std::string {
        const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
        return v ? std::string(v) : std::string();
    };
    const std::string user_home = env("HOME").empty() ? "/" : env("HOME");
    HubSettings s;
    s.endpoint = trim(env("HF_ENDPOINT"));
    if (s.endpoint.empty()) s.endpoint = "https://huggingface.co";
    while (s.endpoint.size() > 1 && s.endpoint.back() == '/') s.endpoint.pop_back();

    const std::string xdg = env("XDG_CACHE_HOME");
    s.home = expand_user(!env("HF_HOME").empty() ? env("HF_HOME") : (xdg.empty() ? user_home + "/.cache" : xdg) + "/huggingface",
                         user_home);
    std::string cache = env("HF_HUB_CACHE");
    if (cache.empty()) cache = env("HUGGINGFACE_HUB_CACHE");  // the older name
    s.cache_dir = expand_user(cache.empty() ? s.home + "/hub" : cache, user_home);

    for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
        if (std::string t = trim(env(name)); !t.empty()) {
            s.token = t;
            s.token_source = name;
            break;
        }
    }
    if (s.token.empty()) {
        const std::string path = expand_user(!env("HF_TOKEN_PATH").empty() ? env("HF_TOKEN_PATH") : s.home + "/token", user_home);
        std::ifstream f(path);
        std::stringstream ss;
        if (f && (ss << f.rdbuf())) {
            s.token = trim(ss.str());
            if (!s.token.empty()) s.token_source = path;
        }
    }
    s.offline = is_true(getenv_fn ? getenv_fn("HF_HUB_OFFLINE") : std::getenv("HF_HUB_OFFLINE"));
    return s;
}

}  // namespace fdl::hub
