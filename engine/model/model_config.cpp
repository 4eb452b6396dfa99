#include "engine/model/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/io/error.h"
#include "engine/io/files.h"
#include "engine/model/architecture.h"

namespace fdl {

using json = nlohmann::json;

static std::string read_text(const std::string& path, bool required, bool* found = nullptr) {
    const bool there = file_exists(path);
    if (found) *found = there;
    if (!there) {
        if (required) throw file_error(path, "missing (is this a model folder?)");
        return {};
    }
    return read_file(path);
}

// An empty key: the family's config has no such key, and the field keeps `fallback`.
static int get_int(const json& j, const std::string& key, const std::string& file, int lo, int hi, int fallback,
                   bool required) {
    if (key.empty() || !j.contains(key) || j[key].is_null()) {
        if (required && !key.empty()) throw file_error(file, "missing \"" + key + "\"");
        return fallback;
    }
    if (!j[key].is_number_integer()) throw file_error(file, "\"" + key + "\" must be an integer");
    int64_t v = j[key].get<int64_t>();
    if (v < lo || v > hi)
        throw file_error(file, "\"" + key + "\" = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + "]");
    return int(v);
}

static double get_num(const json& j, const std::string& key, const std::string& file, double fallback) {
    if (key.empty() || !j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) throw file_error(file, "\"" + key + "\" must be a number");
    return j[key].get<double>();
}

static void add_eos(const json& v, std::vector<int32_t>& out) {
    auto add = [&](const json& x) {
        if (x.is_number_integer()) {
            int32_t id = x.get<int32_t>();
            for (auto e : out) if (e == id) return;
            out.push_back(id);
        }
    };
    if (v.is_array()) for (auto& x : v) add(x);
    else add(v);
}

// A key's name for messages; the field's when the family has no such key (a read_config hook's value).
static const std::string& key_or(const std::string& key, const std::string& field) { return key.empty() ? field : key; }

// What every shape must satisfy for the forward pass (forward.cpp) to run it.
static void check_shape(const ModelConfig& c, const ConfigKeys& k, const std::string& file) {
    if (c.num_heads % c.num_kv_heads != 0)
        throw file_error(file, key_or(k.num_heads, "num_heads") + " (" + std::to_string(c.num_heads) +
                                   ") is not a multiple of " + key_or(k.num_kv_heads, "num_kv_heads") + " (" +
                                   std::to_string(c.num_kv_heads) + ")");
    if (c.head_dim < 2)  // the default hidden_size / num_attention_heads can be 0
        throw file_error(file, "head_dim = " + std::to_string(c.head_dim) + " (" + key_or(k.hidden_size, "hidden_size") +
                                   " / " + key_or(k.num_heads, "num_heads") + ") must be at least 2");
    if (c.head_dim % 2 != 0) throw file_error(file, "head_dim must be even for rotary embeddings");
    if (!(c.rope_theta > 0) || !(c.rms_norm_eps > 0))
        throw file_error(file, key_or(k.rope_theta, "rope_theta") + " and " + key_or(k.rms_norm_eps, "rms_norm_eps") +
                                   " must be positive");
}

ModelConfig ModelConfig::parse(const std::string& text, const std::string& file) {
    json j = parse_json(text, file);
    if (!j.is_object()) throw file_error(file, "not a JSON object");
    ModelConfig c;
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
        c.architecture = j["architectures"][0].get<std::string>();
    else
        throw file_error(file, "missing \"architectures\"");
    c.arch = find_architecture(c.architecture);
    if (!c.arch) throw file_error(file, unknown_architecture_message(c.architecture));
    const Architecture& a = *c.arch;
    const ConfigKeys& k = a.config;
    c.is_diffusion = a.block_diffusion;
    c.hidden_size = get_int(j, k.hidden_size, file, 1, 65536, 0, true);
    c.num_layers = get_int(j, k.num_layers, file, 1, 1024, 0, true);
    c.num_heads = get_int(j, k.num_heads, file, 1, 1024, 0, true);
    c.num_kv_heads = get_int(j, k.num_kv_heads, file, 1, 1024, c.num_heads, false);
    c.intermediate_size = get_int(j, k.intermediate_size, file, 1, 1 << 20, 0, true);
    c.vocab_size = get_int(j, k.vocab_size, file, 1, 1 << 22, 0, true);
    c.max_position_embeddings = get_int(j, k.max_position_embeddings, file, 1, 1 << 24, 32768, false);
    c.bd_size = get_int(j, k.block_size, file, 1, 4096, 32, false);
    c.head_dim = get_int(j, k.head_dim, file, 1, 4096, c.num_heads > 0 ? c.hidden_size / c.num_heads : 0, false);
    c.rope_theta = get_num(j, k.rope_theta, file, 10000.0);
    c.rms_norm_eps = get_num(j, k.rms_norm_eps, file, 1e-6);
    if (!a.read_config) check_shape(c, k, file);  // else once the hook has run
    if (j.contains("fastdllm_chat")) {
        const auto& fc = j["fastdllm_chat"];
        if (!fc.is_object()) throw file_error(file, "\"fastdllm_chat\" must be an object");
        c.chat_history_turns = get_int(fc, "history_turns", file, 0, 1 << 20, -1, false);
    }
    const std::string& tie = k.tie_word_embeddings;
    if (!tie.empty() && j.contains(tie)) {
        if (!j[tie].is_boolean()) throw file_error(file, "\"" + tie + "\" must be true or false");
        c.tie_word_embeddings = j[tie].get<bool>();
    }
    if (!k.eos_token_id.empty() && j.contains(k.eos_token_id)) add_eos(j[k.eos_token_id], c.eos_token_ids);
    const std::string& act = k.hidden_act;
    if (!act.empty() && j.contains(act) && j[act].is_string() && j[act] != "silu")
        throw file_error(file, act + " \"" + j[act].get<std::string>() + "\" is not supported (only silu)");
    if (a.read_config) {
        a.read_config(j, file, c);
        const std::pair<int, const char*> sizes[] = {{c.hidden_size, "hidden_size"}, {c.num_layers, "num_layers"},
                                                     {c.num_heads, "num_heads"}, {c.num_kv_heads, "num_kv_heads"},
                                                     {c.intermediate_size, "intermediate_size"}, {c.vocab_size, "vocab_size"},
                                                     {c.max_position_embeddings, "max_position_embeddings"},
                                                     {c.bd_size, "bd_size"}};
        for (const auto& [v, what] : sizes)
            if (v < 1) throw file_error(file, std::string(what) + " = " + std::to_string(v) + " must be positive");
        check_shape(c, k, file);
    }
    return c;
}

ModelConfig ModelConfig::from_dir(const std::string& dir) {
    const std::string file = dir + "/config.json";
    ModelConfig c = parse(read_text(file, true), file);
    c.dir = dir;
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    c.name = d.substr(d.find_last_of('/') == std::string::npos ? 0 : d.find_last_of('/') + 1);
    // A snapshot in the Hugging Face cache (models--ORG--NAME/snapshots/COMMIT) goes by NAME.
    const size_t snap = d.rfind("/snapshots/");
    if (snap != std::string::npos && snap > 0 && d.find('/', snap + 11) == std::string::npos) {
        const size_t slash = d.find_last_of('/', snap - 1), start = slash == std::string::npos ? 0 : slash + 1;
        const std::string repo = d.substr(start, snap - start);
        if (repo.rfind("models--", 0) == 0 && repo.rfind("--") > 6) c.name = repo.substr(repo.rfind("--") + 2);
    }
    bool found = false;
    const std::string gen = dir + "/generation_config.json";
    std::string gtext = read_text(gen, false, &found);
    if (found) {
        json g = parse_json(gtext, gen);
        if (g.is_object() && g.contains("eos_token_id")) add_eos(g["eos_token_id"], c.eos_token_ids);
    }
    return c;
}

std::string ModelConfig::describe() const {
    std::ostringstream s;
    const Architecture* a = arch ? arch : find_architecture(architecture);
    const std::string family = a ? a->family : !architecture.empty() ? architecture : "Qwen2";
    s << (is_diffusion ? "block-diffusion " : "autoregressive ") << family << ", " << num_layers << " layers, hidden "
      << hidden_size << ", " << num_heads << "/" << num_kv_heads << " heads x " << head_dim << ", mlp "
      << intermediate_size << ", vocab " << vocab_size << (tie_word_embeddings ? ", tied" : "") << ", "
      << parameter_count() / 1e6 << "M params";
    return s.str();
}

int64_t ModelConfig::parameter_count() const {
    const int64_t h = hidden_size, q = int64_t(num_heads) * head_dim, kv = int64_t(num_kv_heads) * head_dim;
    const int64_t per_layer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * intermediate_size + 2 * h;
    return int64_t(vocab_size) * h * (tie_word_embeddings ? 1 : 2) + num_layers * per_layer + h;
}

}  // namespace fdl
