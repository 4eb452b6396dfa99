#include "engine/testing/random_model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/io/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/architecture.h"

namespace fdl {

using json = nlohmann::json;

bool published_shape(const std::string& name, bool diffusion, ModelConfig& c) {
    c = ModelConfig();
    c.architecture = diffusion ? "Fast_dLLM_QwenForCausalLM" : "Qwen2ForCausalLM";
    c.arch = &architecture_of(c);
    c.is_diffusion = c.arch->block_diffusion;
    c.rope_theta = 1e6;
    c.rms_norm_eps = 1e-6;
    c.bd_size = 32;
    c.max_position_embeddings = 32768;
    c.eos_token_ids = {151645};
    if (name == "qwen2.5-0.5b") {
        c.hidden_size = 896, c.num_layers = 24, c.num_heads = 14, c.num_kv_heads = 2, c.head_dim = 64;
        c.intermediate_size = 4864, c.vocab_size = 151936, c.tie_word_embeddings = true;
    } else if (name == "qwen2.5-1.5b") {
        c.hidden_size = 1536, c.num_layers = 28, c.num_heads = 12, c.num_kv_heads = 2, c.head_dim = 128;
        c.intermediate_size = 8960, c.vocab_size = 151936, c.tie_word_embeddings = true;
    } else if (name == "qwen2.5-7b") {
        c.hidden_size = 3584, c.num_layers = 28, c.num_heads = 28, c.num_kv_heads = 4, c.head_dim = 128;
        c.intermediate_size = 18944, c.vocab_size = 152064, c.tie_word_embeddings = false;
    } else {
        return false;
    }
    return true;
}

namespace {

// A small fast generator: speed matters when writing 15 GB of 7B-shaped weights.
struct SplitMix {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    float uniform() { return float((next() >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f; }  // [-1, 1)
};

}  // namespace

uint64_t write_random_model(const std::string& dir, const RandomModelSpec& spec) {
    const ModelConfig& c = spec.shape;
    const Architecture& a = architecture_of(c);
    ::mkdir(dir.c_str(), 0755);
    DType dt;
    if (spec.dtype == "bf16") dt = DType::BF16;
    else if (spec.dtype == "f16") dt = DType::F16;
    else if (spec.dtype == "f32") dt = DType::F32;
    else throw Error("unknown dtype '" + spec.dtype + "' (bf16, f16 or f32)");
    const size_t es = dtype_size(dt);

    struct Planned {
        CheckpointTensor t;
        uint64_t bytes;
    };
    std::vector<Planned> plan;
    for (CheckpointTensor& t : checkpoint_tensors(a, c)) {
        int64_t n = 1;
        for (auto d : t.shape) n *= d;
        plan.push_back({std::move(t), uint64_t(n) * es});
    }
    // Split into shards of at most shard_bytes (a tensor never straddles two shards).
    std::vector<std::vector<size_t>> shards(1);
    uint64_t cur = 0, total = 0;
    for (size_t i = 0; i < plan.size(); i++) {
        if (cur > 0 && cur + plan[i].bytes > spec.shard_bytes) {
            shards.emplace_back();
            cur = 0;
        }
        shards.back().push_back(i);
        cur += plan[i].bytes;
        total += plan[i].bytes;
    }
    SplitMix rng{spec.seed};
    json weight_map = json::object();
    const float scale = 0.02f * std::sqrt(3.0f);  // uniform with standard deviation 0.02
    std::vector<uint8_t> buf;
    for (size_t s = 0; s < shards.size(); s++) {
        const std::string fname = shards.size() == 1 ? "model.safetensors"
                                                     : "model-" + std::to_string(100001 + s).substr(1) + "-of-" +
                                                           std::to_string(100000 + shards.size()).substr(1) + ".safetensors";
        json header = json::object();
        uint64_t off = 0;
        for (size_t i : shards[s]) {
            const CheckpointTensor& t = plan[i].t;
            header[t.name] = {{"dtype", dtype_name(dt)}, {"shape", t.shape}, {"data_offsets", {off, off + plan[i].bytes}}};
            off += plan[i].bytes;
            weight_map[t.name] = fname;
        }
        std::string h = header.dump();
        while ((h.size() + 8) % 8) h.push_back(' ');
        const std::string path = dir + "/" + fname;
        FILE* f = std::fopen(path.c_str(), "wb");
        if (!f) throw file_error(path, "cannot write");
        uint8_t lenbuf[8];
        for (int i = 0; i < 8; i++) lenbuf[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
        bool ok = std::fwrite(lenbuf, 1, 8, f) == 8 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
        for (size_t i : shards[s]) {
            const uint64_t n = plan[i].bytes / es;
            const uint64_t chunk = 1 << 20;
            for (uint64_t done = 0; done < n && ok; done += chunk) {
                const uint64_t m = std::min(chunk, n - done);
                buf.resize(m * es);
                for (uint64_t k = 0; k < m; k++) {
                    const CheckpointTensor::Kind kind = plan[i].t.kind;
                    float v = kind == CheckpointTensor::Norm   ? 1.0f
                              : kind == CheckpointTensor::Bias ? 0.1f * scale * rng.uniform()
                                                               : scale * rng.uniform();
                    if (dt == DType::BF16) { uint16_t x = f32_to_bf16(v); std::memcpy(&buf[k * 2], &x, 2); }
                    else if (dt == DType::F16) { uint16_t x = f32_to_f16(v); std::memcpy(&buf[k * 2], &x, 2); }
                    else std::memcpy(&buf[k * 4], &v, 4);
                }
                ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
            }
        }
        if (std::fclose(f) != 0 || !ok) throw file_error(path, "write failed (disk full?)");
    }
    if (shards.size() > 1) {
        std::ofstream idx(dir + "/model.safetensors.index.json");
        idx << json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
    }
    // The hyper-parameters under the family's config keys (architecture.h); none it lacks.
    const ConfigKeys& k = a.config;
    json cfg = {{"architectures", {c.architecture}},
                {"model_type", a.model_type},
                {"torch_dtype", spec.dtype == "bf16" ? "bfloat16" : spec.dtype == "f16" ? "float16" : "float32"}};
    auto put = [&](const std::string& key, const json& v) {
        if (!key.empty()) cfg[key] = v;
    };
    put(k.hidden_size, c.hidden_size);
    put(k.num_layers, c.num_layers);
    put(k.num_heads, c.num_heads);
    put(k.num_kv_heads, c.num_kv_heads);
    put(k.intermediate_size, c.intermediate_size);
    put(k.vocab_size, c.vocab_size);
    put(k.max_position_embeddings, c.max_position_embeddings);
    put(k.rope_theta, c.rope_theta);
    put(k.rms_norm_eps, c.rms_norm_eps);
    put(k.tie_word_embeddings, c.tie_word_embeddings);
    put(k.hidden_act, "silu");
    put(k.eos_token_id, c.eos_token_ids.empty() ? json(nullptr) : json(c.eos_token_ids[0]));
    if (c.head_dim != c.hidden_size / c.num_heads) put(k.head_dim, c.head_dim);
    if (c.is_diffusion) put(k.block_size, c.bd_size);
    std::ofstream(dir + "/config.json") << cfg.dump(2);
    if (!spec.tokenizer_json.empty()) {
        std::ifstream in(spec.tokenizer_json, std::ios::binary);
        if (!in) throw file_error(spec.tokenizer_json, "cannot read");
        std::ofstream(dir + "/tokenizer.json", std::ios::binary) << in.rdbuf();
    }
    if (spec.mask_token_id >= 0 && !a.mask_token.empty())
        std::ofstream(dir + "/added_tokens.json") << json{{a.mask_token, spec.mask_token_id}}.dump();
    return total;
}

}  // namespace fdl
