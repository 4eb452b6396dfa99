#include "engine/decode/speedup_bound.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/io/clock.h"
#include "engine/io/files.h"
#include "engine/kernels/kernels.h"
#include "engine/parallel/thread_pool.h"

namespace fdl {

double best_case_speedup(const PassCosts& c, CacheMode mode) {
    const int B = c.block_size, S = c.sub_block_size;
    if (B <= 0 || S <= 0 || B % S != 0 || c.one <= 0 || c.block <= 0) return 0;
    const double ar = B * c.one;
    if (mode == CacheMode::DualOverlap) {
        if (B / S > 1 && c.overlap <= 0) return 0;
        return ar / (2 * c.block + (B / S - 1) * c.overlap);
    }
    return ar / ((B / S + 1) * c.block);
}

PassCosts time_pass_costs(Model& model, int B, int S) {
    const int context = 64;
    PassCosts pc;
    pc.block_size = B;
    pc.sub_block_size = S;
    const int sizes[4] = {1, S, std::min(2 * S, B), B};
    KVCache cache = model.make_cache();
    cache.reserve(context + B + 1);
    std::vector<int32_t> toks(size_t(context + B), model.config().vocab_size > 1 ? 1 : 0);
    std::vector<float> logits(size_t(model.config().vocab_size) * size_t(S));
    model.forward(cache, {toks.data(), context, 0, context, AttnMask::Causal, 0, 0, 0}, nullptr);
    auto pass = [&](int n) {
        const int nl = std::min(n, S);
        const double t0 = now_seconds();
        model.forward(cache, {toks.data() + context, n, context, context + n, AttnMask::BlockCausal, B, n - nl, nl},
                      logits.data());
        return now_seconds() - t0;
    };
    double first = 0;
    for (int n : sizes) pass(n);  // warm-up: scratch buffers grown, pages touched
    for (int n : sizes) first += pass(n);
    const int reps = std::clamp(int(1.5 / std::max(first, 1e-6)), 3, 21);
    std::vector<double> t[4];
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < 4; i++) t[i].push_back(pass(sizes[i]));
    double med[4];
    for (int i = 0; i < 4; i++) {
        std::sort(t[i].begin(), t[i].end());
        med[i] = t[i][t[i].size() / 2];
    }
    pc.one = med[0], pc.sub = med[1], pc.overlap = med[2], pc.block = med[3];
    return pc;
}

namespace {

std::mutex g_mu;
std::map<std::string, PassCosts> g_known;  // timed or read by this process

std::string cache_file() {
    const char* x = std::getenv("XDG_DATA_HOME");
    if (x && *x) return std::string(x) + "/fastdllm/pass_costs.json";
    const char* h = std::getenv("HOME");
    if (h && *h) return std::string(h) + "/.local/share/fastdllm/pass_costs.json";
    return "";
}

// The key of a model's pass costs; "" for a model without a folder.
std::string key_of(const Model& model, int B, int S) {
    const std::string& dir = model.config().dir;
    if (dir.empty()) return "";
    std::error_code ec;
    const std::filesystem::path canon = std::filesystem::weakly_canonical(dir, ec);
    std::string weights;
    for (const char* f : {"model.safetensors", "model.safetensors.index.json"}) {
        struct stat st {};
        const std::string p = (ec ? std::filesystem::path(dir) : canon).string() + "/" + f;
        if (::stat(p.c_str(), &st) == 0) {
            weights = std::string(f) + " " + std::to_string(st.st_size) + " bytes, modified " +
                      std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
            break;
        }
    }
    return (ec ? dir : canon.string()) + " | " + weights + " | " + weight_type_name(model.weight_type()) + " | " +
           std::to_string(pool_threads()) + " threads | " + kernel_path_name() + " | B=" + std::to_string(B) +
           " S=" + std::to_string(S);
}

nlohmann::json read_store(const std::string& path) {
    try {
        if (!path.empty() && file_exists(path)) {
            nlohmann::json j = read_json_file(path);
            if (j.is_object() && j.contains("entries") && j["entries"].is_object()) return j;
        }
    } catch (const std::exception&) {  // an unreadable store is replaced
    }
    return {{"what", "forward pass costs (seconds, medians) timed by fastdllm for the speedup's bound"},
            {"entries", nlohmann::json::object()}};
}

}  // namespace

std::optional<PassCosts> known_pass_costs(const Model& model, int B, int S) {
    const std::string key = key_of(model, B, S);
    if (key.empty()) return std::nullopt;
    std::lock_guard<std::mutex> lk(g_mu);
    if (auto it = g_known.find(key); it != g_known.end()) return it->second;
    const nlohmann::json store = read_store(cache_file());
    const auto it = store["entries"].find(key);
    if (it == store["entries"].end() || !it->is_object()) return std::nullopt;
    PassCosts pc;
    pc.block_size = B;
    pc.sub_block_size = S;
    try {
        pc.one = it->value("one_s", 0.0);
        pc.sub = it->value("sub_s", 0.0);
        pc.overlap = it->value("overlap_s", 0.0);
        pc.block = it->value("block_s", 0.0);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (pc.one <= 0 || pc.block <= 0) return std::nullopt;
    g_known[key] = pc;
    return pc;
}

PassCosts pass_costs(Model& model, int B, int S) {
    if (std::optional<PassCosts> k = known_pass_costs(model, B, S)) return *k;
    const PassCosts pc = time_pass_costs(model, B, S);
    const std::string key = key_of(model, B, S);
    if (key.empty()) return pc;
    std::lock_guard<std::mutex> lk(g_mu);
    g_known[key] = pc;
    const std::string path = cache_file();
    if (path.empty()) return pc;
    try {
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
        nlohmann::json store = read_store(path);
        store["entries"][key] = {{"one_s", pc.one}, {"sub_s", pc.sub}, {"overlap_s", pc.overlap}, {"block_s", pc.block}};
        write_file_atomic(path, store.dump(1) + "\n");
    } catch (const std::exception&) {  // not stored: timed again by the next process
    }
    return pc;
}

}  // namespace fdl
