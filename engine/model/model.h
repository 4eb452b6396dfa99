// A Qwen2 decoder (the architecture of Fast-dLLM v2 and of its AR parent) in float32 on the CPU.
// One forward pass runs n tokens at consecutive positions: GEMMs with M = n (kernels.h),
// everything else in loops on the engine's thread pool (thread_pool.h), attention over cache rows
// [0, attend_len).
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/kv_cache.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"

namespace fdl {

// Which cache rows a query at position p may attend to (rows are positions).
enum class AttnMask {
    Causal,       // j <= p
    BlockCausal,  // j / B <= p / B  (bidirectional inside a block, causal across blocks)
    Full,         // every row < attend_len
};

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

// How weight matrices are kept in memory (chosen at load; the checkpoint may differ).
enum class WeightType { F32, BF16, INT8 };
const char* weight_type_name(WeightType t);
// "f32", "bf16", "int8"; "auto" gives an empty choice (LoadOptions::weight_type). False otherwise.
bool parse_weight_type(const std::string& s, std::optional<WeightType>& out);

// A Linear's input rows in the form its kernels read: bf16, or int8 with per-row scales (and the
// unsigned copy the VNNI kernels read); F32 reads the caller's rows as they are. Filled row by row
// (Linear::prepare_rows), so a pass can split the conversion across threads with the norm or
// SwiGLU that produces the rows.
struct LinearInput {
    std::vector<uint16_t> b16;
    std::vector<int8_t> q8;
    std::vector<uint8_t> u8;
    std::vector<float> scales;
};

// Memory for weight matrices. resize() leaves new elements uninitialised (the matrices are filled
// whole right after; zeroing them first was one more pass over every byte of the weights), and a
// matrix of 2 MB or more is placed on 2 MB boundaries with transparent huge pages asked for
// (weight_memory.cpp): one-token passes stream every weight, and with 4 KB pages they ran slower
// in 12 of 16 alternating pairs at the 1.5B shape.
void* allocate_weights(size_t bytes);
void free_weights(void* p);

template <class T>
struct WeightAllocator {
    using value_type = T;
    WeightAllocator() = default;
    template <class U>
    WeightAllocator(const WeightAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(allocate_weights(n * sizeof(T))); }
    void deallocate(T* p, size_t) { free_weights(p); }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) == 0) ::new (static_cast<void*>(p)) U;
        else ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    template <class U>
    bool operator==(const WeightAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const WeightAllocator<U>&) const { return false; }
};

// A weight matrix [out, in] (row-major, like the checkpoint) and its optional bias.
struct Linear {
    int in = 0, out = 0;
    WeightType type = WeightType::F32;
    std::vector<float> w;        // F32
    std::vector<uint16_t, WeightAllocator<uint16_t>> w16;  // BF16
    std::vector<int8_t, WeightAllocator<int8_t>> w8;      // INT8, with one scale per row and the row sums (for VNNI)
    std::vector<float> scale;
    std::vector<int32_t> wsum;
    std::vector<float> b;
    bool packed = false;  // w/w16/w8 in the kernels' 16-row panel layout (kernels.h)
    // Stores a float32 [out, in] matrix in `type`.
    void set(const std::vector<float>& m, WeightType type);
    void set_f32(std::vector<float>&& m);       // the same, keeping m's buffer
    // BF16 kept as it is (no rounding): rows[r] holds row r's `in` values (little-endian, any
    // alignment, e.g. inside a mapped file).
    // `pack` false keeps the rows row-major (a matrix that is only looked up by rows).
    void set_bf16_rows(const uint8_t* const* rows, bool pack = true);
    // y[n, out] = x[n, in] @ w^T (+ b)
    void apply(const float* x, int n, float* y) const;
    // The same in three steps: make room in li for n rows (before a job), convert rows [r0, r1)
    // of x (x points at row 0; threads may convert disjoint ranges at once), then multiply the n
    // prepared rows.
    void reserve_input(LinearInput& li, int n) const;
    void prepare_rows(const float* x, int r0, int r1, LinearInput& li) const;
    void apply_prepared(const float* x, const LinearInput& li, int n, float* y) const;  // F32 reads x
    // Row r as float32 (embedding lookup).
    void row(int r, float* dst) const;
    size_t bytes() const;
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
    // Loads a Hugging Face model folder (config, weights, tokenizer). Throws fdl::Error.
    static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& opts = {});
    // A model of the given shape with random weights, built in memory (speed benchmarks at the
    // published shapes without writing gigabytes to disk). No tokenizer.
    static std::unique_ptr<Model> random(const ModelConfig& shape, WeightType type, uint64_t seed = 1);

    const ModelConfig& config() const { return cfg_; }
    const Tokenizer& tokenizer() const { return tok_; }
    bool has_tokenizer() const { return has_tok_; }
    int32_t mask_token_id() const { return mask_id_; }  // -1 when the tokenizer has none

    // Runs one forward pass, writing K/V into `cache` and logits_count x vocab floats to `logits`.
    void forward(KVCache& cache, const Pass& pass, float* logits);
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
    void attention(KVCache& cache, int layer, const Pass& p, int rb, int nr);
};

}  // namespace fdl
