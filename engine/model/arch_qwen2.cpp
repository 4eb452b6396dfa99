// Qwen2 / Qwen2.5 (transformers' Qwen2ForCausalLM): the autoregressive parent of Fast-dLLM v2.
// Biases on q, k and v only.
#include "engine/model/architecture.h"

namespace fdl {

Architecture qwen2_architecture() {
    Architecture a;
    a.name = "Qwen2ForCausalLM";
    a.model_type = "qwen2";
    a.family = "Qwen2";
    a.block_diffusion = false;
    a.mask = AttnMask::Causal;
    // Not part of an AR model, but the Qwen2.5 tokenizers of Fast-dLLM checkpoints carry it.
    a.mask_token = "|<MASK>|";
    a.stop_token = "<|im_end|>";

    ConfigKeys& k = a.config;
    k.hidden_size = "hidden_size";
    k.num_layers = "num_hidden_layers";
    k.num_heads = "num_attention_heads";
    k.intermediate_size = "intermediate_size";
    k.vocab_size = "vocab_size";
    k.num_kv_heads = "num_key_value_heads";
    k.head_dim = "head_dim";
    k.max_position_embeddings = "max_position_embeddings";
    k.rope_theta = "rope_theta";
    k.rms_norm_eps = "rms_norm_eps";
    k.tie_word_embeddings = "tie_word_embeddings";
    k.eos_token_id = "eos_token_id";
    k.block_size = "bd_size";
    k.hidden_act = "hidden_act";

    TensorNames& t = a.tensors;
    t.embed = "model.embed_tokens.weight";
    t.attn_norm = "model.layers.{L}.input_layernorm.weight";
    t.mlp_norm = "model.layers.{L}.post_attention_layernorm.weight";
    const std::string attn = "model.layers.{L}.self_attn.", mlp = "model.layers.{L}.mlp.";
    t.q = {attn + "q_proj.weight", attn + "q_proj.bias"};
    t.k = {attn + "k_proj.weight", attn + "k_proj.bias"};
    t.v = {attn + "v_proj.weight", attn + "v_proj.bias"};
    t.o = {attn + "o_proj.weight", ""};
    t.gate = {mlp + "gate_proj.weight", ""};
    t.up = {mlp + "up_proj.weight", ""};
    t.down = {mlp + "down_proj.weight", ""};
    t.final_norm = "model.norm.weight";
    t.lm_head = "lm_head.weight";
    return a;
}

}  // namespace fdl
