// Where the Hugging Face cache is, which hub to ask and with what token: the environment
// variables the Hugging Face tools read, with the same defaults.
#pragma once
#include <functional>
#include <string>

namespace fdl::hub {

struct HubSettings {
    std::string endpoint;      // HF_ENDPOINT, default https://huggingface.co (no trailing '/')
    std::string home;          // HF_HOME, default $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface
    std::string cache_dir;     // HF_HUB_CACHE, default $HF_HOME/hub
    std::string token;         // HF_TOKEN, else the file written by `huggingface-cli login`
    std::string token_source;  // "HF_TOKEN" or the token file's path; empty when there is no token
    bool offline = false;      // HF_HUB_OFFLINE=1: never use the network

    using Getenv = std::function<const char*(const char*)>;
    // `getenv` is replaceable for tests.
    static HubSettings from_environment(const Getenv& getenv = nullptr);
};

}  // namespace fdl::hub
