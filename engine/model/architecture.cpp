#include "engine/model/architecture.h"

#include <memory>
#include <mutex>

#include "engine/io/error.h"
#include "engine/model/model_config.h"

namespace fdl {

namespace {

void check_entry(const Architecture& a) {
    auto need = [&](const std::string& value, const char* what) {
        if (value.empty()) throw Error("architecture \"" + a.name + "\": no " + what);
    };
    auto per_layer = [&](const std::string& pattern, const char* what) {
        need(pattern, what);
        if (pattern.find("{L}") == std::string::npos)
            throw Error("architecture \"" + a.name + "\": the " + what + " name \"" + pattern +
                        "\" has no {L} for the layer index");
    };
    need(a.name, "name");
    const TensorNames& t = a.tensors;
    need(t.embed, "embedding tensor");
    need(t.final_norm, "final norm tensor");
    need(t.lm_head, "lm_head tensor");
    per_layer(t.attn_norm, "attention norm");
    per_layer(t.mlp_norm, "MLP norm");
    const std::pair<const ProjectionNames*, const char*> projections[] = {
        {&t.q, "q projection"}, {&t.k, "k projection"}, {&t.v, "v projection"}, {&t.o, "o projection"},
        {&t.gate, "gate projection"}, {&t.up, "up projection"}, {&t.down, "down projection"}};
    for (const auto& [p, what] : projections) {
        per_layer(p->weight, what);
        if (!p->bias.empty()) per_layer(p->bias, what);
    }
    if (a.block_diffusion) need(a.mask_token, "mask token (a block-diffusion model needs one)");
    if (!a.read_config) {  // else the hook may supply them
        const ConfigKeys& k = a.config;
        for (const std::string* key : {&k.hidden_size, &k.num_layers, &k.num_heads, &k.intermediate_size, &k.vocab_size})
            need(*key, "config key for a required hyper-parameter (or a read_config hook)");
    }
}

// Entries live behind unique_ptrs so that registering another never moves one (ModelConfig
// keeps pointers to them).
struct Registry {
    std::mutex mu;
    std::vector<std::unique_ptr<const Architecture>> entries;

    // The built-in families, one function per file. Listed here rather than registered by static
    // initialisers in their own files: the linker drops object files of a static library that
    // nothing references, and their initialisers with them.
    Registry() {
        add(qwen2_architecture());
        add(fast_dllm_qwen_architecture());
    }
    void add(Architecture a) {
        check_entry(a);
        for (const auto& e : entries)
            if (e->name == a.name) throw Error("architecture \"" + a.name + "\" is already registered");
        entries.push_back(std::make_unique<const Architecture>(std::move(a)));
    }
};

Registry& registry() {
    static Registry r;
    return r;
}

}  // namespace

void register_architecture(Architecture a) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.add(std::move(a));
}

const Architecture* find_architecture(const std::string& name) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& e : r.entries)
        if (e->name == name) return e.get();
    return nullptr;
}

std::vector<std::string> architecture_names() {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    std::vector<std::string> names;
    for (const auto& e : r.entries) names.push_back(e->name);
    return names;
}

std::string unknown_architecture_message(const std::string& name) {
    std::string list;
    for (const std::string& n : architecture_names()) list += (list.empty() ? "" : ", ") + n;
    return "unknown architecture \"" + name + "\" (supported: " + list + ")";
}

const Architecture& architecture_of(const ModelConfig& c) {
    if (c.arch) return *c.arch;
    const Architecture* a = find_architecture(c.architecture);
    if (!a) throw Error(unknown_architecture_message(c.architecture));
    return *a;
}

std::string layer_tensor(const std::string& pattern, int layer) {
    std::string s = pattern;
    const std::string index = std::to_string(layer);
    for (size_t at = s.find("{L}"); at != std::string::npos; at = s.find("{L}", at + index.size()))
        s.replace(at, 3, index);
    return s;
}

std::vector<CheckpointTensor> checkpoint_tensors(const Architecture& a, const ModelConfig& c) {
    const TensorNames& t = a.tensors;
    const int64_t H = c.hidden_size, Q = int64_t(c.num_heads) * c.head_dim, KV = int64_t(c.num_kv_heads) * c.head_dim;
    const int64_t I = c.intermediate_size;
    std::vector<CheckpointTensor> out;
    out.push_back({t.embed, {c.vocab_size, H}, CheckpointTensor::Matrix});
    for (int l = 0; l < c.num_layers; l++) {
        auto projection = [&](const ProjectionNames& p, int64_t rows, int64_t cols) {
            out.push_back({layer_tensor(p.weight, l), {rows, cols}, CheckpointTensor::Matrix});
            if (!p.bias.empty()) out.push_back({layer_tensor(p.bias, l), {rows}, CheckpointTensor::Bias});
        };
        out.push_back({layer_tensor(t.attn_norm, l), {H}, CheckpointTensor::Norm});
        projection(t.q, Q, H);
        projection(t.k, KV, H);
        projection(t.v, KV, H);
        projection(t.o, H, Q);
        out.push_back({layer_tensor(t.mlp_norm, l), {H}, CheckpointTensor::Norm});
        projection(t.gate, I, H);
        projection(t.up, I, H);
        projection(t.down, H, I);
    }
    out.push_back({t.final_norm, {H}, CheckpointTensor::Norm});
    if (!c.tie_word_embeddings) out.push_back({t.lm_head, {c.vocab_size, H}, CheckpointTensor::Matrix});
    return out;
}

}  // namespace fdl
