// The model families the engine can load, keyed by the name in config.json's "architectures".
// Every family shares the decoder of forward.cpp (pre-norm RMSNorm, rotary attention with
// grouped KV heads, SwiGLU MLP); an entry says what differs between checkpoints of that shape:
// how they were trained (autoregressive or block diffusion, and so the attention mask), where
// the mask token comes from, what their tensors and config keys are called and which
// projections carry a bias.
//
// The built-in families are listed in architecture.cpp, one file each (arch_*.cpp). A program
// can add its own with register_architecture() before it loads a model; nothing in the engine
// has to change for that.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/model/attn_mask.h"

namespace fdl {

struct ModelConfig;

// The config.json keys of the hyper-parameters (ModelConfig's fields of the same meaning). An
// empty key means the family's config has no such key and the field keeps its default (for
// head_dim: hidden_size / num_heads; for num_kv_heads: num_heads).
struct ConfigKeys {
    std::string hidden_size, num_layers, num_heads, intermediate_size, vocab_size;  // required
    std::string num_kv_heads, head_dim, max_position_embeddings, rope_theta, rms_norm_eps;
    std::string tie_word_embeddings;
    std::string eos_token_id;  // an id or a list of ids
    std::string block_size;    // the trained block size of a block-diffusion model
    std::string hidden_act;    // checked to be "silu" (the MLP is SwiGLU) when present
};

// A projection's tensors. An empty bias name: the projection has no bias.
struct ProjectionNames {
    std::string weight, bias;
};

// Checkpoint tensor names. In per-layer names "{L}" stands for the layer index.
struct TensorNames {
    std::string embed;       // [vocab, hidden]
    std::string attn_norm;   // per layer, [hidden]: before attention
    std::string mlp_norm;    // per layer, [hidden]: before the MLP
    ProjectionNames q, k, v, o, gate, up, down;  // per layer, weights [out, in] as in nn.Linear
    std::string final_norm;  // [hidden]
    std::string lm_head;     // [vocab, hidden]; may be absent when the embedding is tied
};

struct Architecture {
    std::string name;        // config.json "architectures"[0], e.g. "Qwen2ForCausalLM"
    std::string model_type;  // config.json "model_type" (written by mkmodel)
    std::string family;      // short name for display ("Qwen2")
    bool block_diffusion = false;          // decodes blocks of tokens in parallel (ModelConfig::is_diffusion)
    AttnMask mask = AttnMask::Causal;      // the mask it was trained with: BlockCausal for block diffusion
    // The token string looked up in the tokenizer for the mask token. Required when
    // block_diffusion; otherwise looked up when present (an AR model decoded in diffusion mode
    // uses it, and samplers never emit it).
    std::string mask_token;
    // The stop token looked up in the tokenizer when config.json names none (the chat turn end).
    std::string stop_token;
    ConfigKeys config;
    // Optional: reads what the keys cannot say (nested or derived values) into the config. Runs
    // after the keys are read and before the values are checked; throws fdl::Error naming `file`.
    std::function<void(const nlohmann::json& config, const std::string& file, ModelConfig& c)> read_config;
    TensorNames tensors;
};

// Adds a family. Throws fdl::Error when the name is taken or the entry lacks a required name.
// Entries are never removed or moved: pointers to them (ModelConfig::arch) stay valid. Safe to
// call from several threads, meant for start-up.
void register_architecture(Architecture a);
// The entry of a config.json architecture name, or nullptr.
const Architecture* find_architecture(const std::string& name);
// The registered names in registration order (the built-ins first).
std::vector<std::string> architecture_names();
// c.arch, or the entry named by c.architecture (a config built in code rather than parsed).
// Throws fdl::Error "unknown architecture ..." naming the registered ones when there is none.
const Architecture& architecture_of(const ModelConfig& c);
// "unknown architecture \"NAME\" (supported: A, B)": the one message for a name not in the table.
std::string unknown_architecture_message(const std::string& name);

// A per-layer tensor name with "{L}" replaced by the layer index.
std::string layer_tensor(const std::string& pattern, int layer);

// Every tensor of a checkpoint of this family and shape, with its shape, in the order mkmodel
// writes them (per layer: attn_norm, q, k, v, o, mlp_norm, gate, up, down, each weight followed by
// its bias). lm_head only when the embedding is untied.
struct CheckpointTensor {
    enum Kind { Matrix, Norm, Bias };
    std::string name;
    std::vector<int64_t> shape;
    Kind kind;
};
std::vector<CheckpointTensor> checkpoint_tensors(const Architecture& a, const ModelConfig& c);

// The built-in families (arch_qwen2.cpp, arch_fast_dllm_qwen.cpp).
Architecture qwen2_architecture();
Architecture fast_dllm_qwen_architecture();

}  // namespace fdl
