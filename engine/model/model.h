// A decoder of the Qwen2 shape (the architecture of Fast-dLLM v2 and of its AR parent; other
// families of this shape are entries of architecture.h) on the CPU, its weight matrices kept in
// float32, bfloat16, int8 or int4 (linear.h). One forward pass runs n tokens at consecutive positions:
// GEMMs with M = n (kernels.h), everything else in loops on the engine's thread pool
// (thread_pool.h), attention over cache rows [0, attend_len).
//
// model.cpp: loading and building a Model; weight_loader.cpp: checkpoint tensors -> ModelWeights;
// forward.cpp: the forward pass.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/attn_mask.h"
#include "engine/model/kv_cache.h"
#include "engine/model/linear.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"

namespace fdl {

struct Pass {
    const int32_t* tokens = nullptr;
    int n = 0;            // tokens in this pass
    int pos0 = 0;         // position of tokens[0]; their K/V go to cache rows pos0 .. pos0+n-1
    int attend_len = 0;   // queries see cache rows [0, attend_len) (subject to the mask)
    AttnMask mask = AttnMask::Causal;
    int block = 0;        // B for BlockCausal
    int logits_from = 0;  // logits are produced for pass rows [logits_from, logits_from+logits_count)
    int logits_count = 0;
};

// One sequence's part of a batched pass (Model::forward_batch).
struct SeqPass {
    KVCache* cache = nullptr;
    Pass pass;
    float* logits = nullptr;
};

// q/k/v and gate/up, which read the same input, are stacked into one matrix each at load:
// one GEMM, one activation conversion and one fork/join of the threads instead of three or two
// (those fixed costs are a large share of a small model's pass).
struct LayerWeights {
    std::vector<float> attn_norm, mlp_norm;
    Linear qkv;      // rows: q_proj [Q], k_proj [KV], v_proj [KV]; biases likewise
    Linear o;
    Linear gate_up;  // rows: gate_proj [inter], up_proj [inter]
    Linear down;
};

// A model's weights in memory, however they were obtained: Model::load reads them from a
// checkpoint (weight_loader.cpp), tests and benchmarks make random ones (engine/testing), and a
// reader of another file format would fill them the same way. Matrices in one WeightType, except
// an untied embedding, which is only looked up by rows.
struct ModelWeights {
    Linear embed;                   // [vocab, hidden]
    std::vector<LayerWeights> layers;
    std::vector<float> final_norm;  // [hidden]
    std::optional<Linear> lm_head;  // [vocab, hidden]; none: tied to the embedding
};

struct LoadOptions {
    bool load_tokenizer = true;
    // Empty (auto): bf16 for models over 1M parameters (the demo and the published models: it
    // halves the memory traffic that bounds decoding), f32 for toy models such as the test
    // fixture (exact agreement with the float64 reference).
    std::optional<WeightType> weight_type;
    // Called after each tensor with the bytes read so far and the checkpoint's total.
    std::function<void(uint64_t done, uint64_t total)> progress;
};

class Model {
public:
    // Loads a Hugging Face model folder (config, tokenizer, weights): ModelConfig::from_dir,
    // Tokenizer::from_model_dir, the checkpoint's tensors by the names of the config's
    // architecture entry, then from_weights. Throws fdl::Error.
    static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& opts = {});
    // A model of the shape `cfg` with these weights (checked against it; throws fdl::Error). With a
    // tokenizer, the mask and stop tokens are looked up in it as the architecture entry says.
    static std::unique_ptr<Model> from_weights(ModelConfig cfg, ModelWeights weights,
                                               std::optional<Tokenizer> tokenizer = std::nullopt);

    const ModelConfig& config() const { return cfg_; }
    const Tokenizer& tokenizer() const { return tok_; }
    bool has_tokenizer() const { return has_tok_; }
    int32_t mask_token_id() const { return mask_id_; }  // -1 when the tokenizer has none

    // Runs one forward pass, writing K/V into `cache` and logits_count x vocab floats to `logits`.
    void forward(KVCache& cache, const Pass& pass, float* logits);
    // Several sequences' passes as one: their rows stacked into each matrix product (the weights
    // read once for all), rotary embeddings, K/V and attention per sequence. Each sequence's
    // logits equal those of its own forward() up to rounding (a GEMM may group rows differently).
    void forward_batch(const std::vector<SeqPass>& seqs);
    // Throws fdl::Error (as forward would) when the pass does not fit the cache or the model.
    void check_pass(const KVCache& cache, const Pass& pass) const;
    KVCache make_cache() const;

    size_t weight_bytes() const;
    WeightType weight_type() const { return wtype_; }

private:
    ModelConfig cfg_;
    Tokenizer tok_;
    bool has_tok_ = false;
    int32_t mask_id_ = -1;
    WeightType wtype_ = WeightType::F32;
    Linear embed_;              // [vocab, hidden]
    std::vector<LayerWeights> layers_;
    std::vector<float> final_norm_;
    Linear lm_head_own_;
    const Linear* lm_head_ = nullptr;  // &embed_ when tied
    std::vector<double> inv_freq_;
    std::vector<float> rope_cos_, rope_sin_;  // rotary table of every position seen so far, [pos, head_dim / 2]

    // Scratch, grown to the largest pass seen; nothing allocates per token.
    std::vector<float> x_, h_, qkv_, att_, gate_up_, act_, rows_;
    LinearInput lin_in_;  // the next matrix's input rows, converted
    int scratch_n_ = 0;
    // Floats per token in qkv_: [q (heads x head_dim) | k | v (kv_heads x head_dim each)].
    size_t qkv_row() const { return size_t(cfg_.num_heads + 2 * cfg_.num_kv_heads) * cfg_.head_dim; }
    void ensure_scratch(int n);
    // Attention output rows [rb, rb + nr) of the pass into att_ (keys and values from the cache).
    // row0: the scratch row of the pass's row 0 (a batched pass holds several sequences' rows).
    void attention(KVCache& cache, int layer, const Pass& p, int rb, int nr, int row0 = 0);
    std::vector<int> row_pos_, row_seq_;  // a batched pass: each row's position and sequence
    std::vector<float> batch_logits_;
};

}  // namespace fdl
