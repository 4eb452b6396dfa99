#include "engine/model/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/io/error.h"
#include "engine/io/files.h"

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

static int get_int(const json& j, const char* key, const std::string& file, int lo, int hi, int fallback, bool required) {
    if (!j.contains(key) || j[key].is_null()) {
        if (required) throw file_error(file, std::string("missing \"") + key + "\"");
        return fallback;
    }
    if (!j[key].is_number_integer()) throw file_error(file, std::string("\"") + key + "\" must be an integer");
    int64_t v = j[key].get<int64_t>();
    if (v < lo || v > hi)
        throw file_error(file, std::string("\"") + key + "\" = " + std::to_string(v) + " is out of range [" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
}

static double get_num(const json& j, const char* key, const std::string& file, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) throw file_error(file, std::string("\"") + key + "\" must be a number");
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

ModelConfig ModelConfig::parse(const std::string& text, const std::string& file) {
    json j = parse_json(text, file);
    if (!j.is_object()) throw file_error(file, "not a JSON object");
    ModelConfig c;
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
        c.architecture = j["architectures"][0].get<std::string>();
    else
        throw file_error(file, "missing \"architectures\"");
    if (c.architecture == "Fast_dLLM_QwenForCausalLM") c.is_diffusion = true;
    else if (c.architecture == "Qwen2ForCausalLM") c.is_diffusion = false;
    else
        throw file_error(file, "unknown architecture \"" + c.architecture +
                                   "\" (supported: Qwen2ForCausalLM, Fast_dLLM_QwenForCausalLM)");
    c.hidden_size = get_int(j, "hidden_size", file, 1, 65536, 0, true);
    c.num_layers = get_int(j, "num_hidden_layers", file, 1, 1024, 0, true);
    c.num_heads = get_int(j, "num_attention_heads", file, 1, 1024, 0, true);
    c.num_kv_heads = get_int(j, "num_key_value_heads", file, 1, 1024, c.num_heads, false);
    c.intermediate_size = get_int(j, "intermediate_size", file, 1, 1 << 20, 0, true);
    c.vocab_size = get_int(j, "vocab_size", file, 1, 1 << 22, 0, true);
    c.max_position_embeddings = get_int(j, "max_position_embeddings", file, 1, 1 << 24, 32768, false);
    c.bd_size = get_int(j, "bd_size", file, 1, 4096, 32, false);
    c.head_dim = get_int(j, "head_dim", file, 1, 4096, c.hidden_size / c.num_heads, false);
    c.rope_theta = get_num(j, "rope_theta", file, 10000.0);
    c.rms_norm_eps = get_num(j, "rms_norm_eps", file, 1e-6);
    if (c.num_heads % c.num_kv_heads != 0)
        throw file_error(file, "num_attention_heads (" + std::to_string(c.num_heads) +
                                   ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
    if (c.head_dim < 2)  // the default hidden_size / num_attention_heads can be 0
        throw file_error(file, "head_dim = " + std::to_string(c.head_dim) + " (hidden_size / num_attention_heads) must be at least 2");
    if (c.head_dim % 2 != 0) throw file_error(file, "head_dim must be even for rotary embeddings");
    if (!(c.rope_theta > 0) || !(c.rms_norm_eps > 0)) throw file_error(file, "rope_theta and rms_norm_eps must be positive");
    if (j.contains("fastdllm_chat")) {
        const auto& fc = j["fastdllm_chat"];
        if (!fc.is_object()) throw file_error(file, "\"fastdllm_chat\" must be an object");
        c.chat_history_turns = get_int(fc, "history_turns", file, 0, 1 << 20, -1, false);
    }
    if (j.contains("tie_word_embeddings")) {
        if (!j["tie_word_embeddings"].is_boolean()) throw file_error(file, "\"tie_word_embeddings\" must be true or false");
        c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
    }
    if (j.contains("eos_token_id")) add_eos(j["eos_token_id"], c.eos_token_ids);
    if (j.contains("hidden_act") && j["hidden_act"].is_string() && j["hidden_act"] != "silu")
        throw file_error(file, "hidden_act \"" + j["hidden_act"].get<std::string>() + "\" is not supported (only silu)");
    return c;
}

ModelConfig ModelConfig::from_dir(const std::string& dir) {
    const std::string file = dir + "/config.json";
    ModelConfig c = parse(read_text(file, true), file);
    c.dir = dir;
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    c.name = d.substr(d.find_last_of('/') == std::string::npos ? 0 : d.find_last_of('/') + 1);
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
    s << (is_diffusion ? "block-diffusion" : "autoregressive") << " Qwen2, " << num_layers << " layers, hidden "
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
