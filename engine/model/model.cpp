#include "engine/model/model.h"

#include <sys/stat.h>

#include <cmath>

#include "engine/io/error.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/kernels.h"
#include "engine/model/architecture.h"
#include "engine/model/weight_loader.h"

namespace fdl {

namespace {

// The mask token's id in `tok` (-1 when it has none) and, when config.json names no stop token,
// the family's stop token added to c. Run before any weight is read, so that a model whose
// tokenizer does not fit it is refused at once.
int32_t resolve_tokens(ModelConfig& c, const Tokenizer& tok) {
    const Architecture& a = architecture_of(c);
    const int32_t mask = a.mask_token.empty() ? -1 : tok.token_id(a.mask_token);
    if (mask >= c.vocab_size)
        throw file_error(c.dir, "mask token id " + std::to_string(mask) + " is outside the model's vocabulary (" +
                                    std::to_string(c.vocab_size) + ")");
    if (c.eos_token_ids.empty() && !a.stop_token.empty()) {
        const int32_t e = tok.token_id(a.stop_token);
        if (e >= 0) c.eos_token_ids.push_back(e);
    }
    if (c.is_diffusion && mask < 0)
        throw file_error(c.dir, "block-diffusion model but the tokenizer has no " + a.mask_token +
                                    " token (checked tokenizer.json, added_tokens.json, tokenizer_config.json)");
    return mask;
}

std::string shape_str(const Linear& l) { return "[" + std::to_string(l.out) + ", " + std::to_string(l.in) + "]"; }

// A matrix of `weights` must have the shape the config gives it and hold its values.
void check_linear(const Linear& l, int out, int in, const std::string& what) {
    if (l.out != out || l.in != in)
        throw Error("model weights: " + what + " is " + shape_str(l) + ", expected [" + std::to_string(out) + ", " +
                    std::to_string(in) + "]");
    const size_t n = l.type == WeightType::INT4 ? int4_bytes(in, out) : size_t(out) * size_t(in);
    const size_t have = l.type == WeightType::F32    ? l.w.size()
                        : l.type == WeightType::BF16 ? l.w16.size()
                        : l.type == WeightType::INT8 ? l.w8.size()
                                                     : l.w4.size();
    if (have != n)
        throw Error("model weights: " + what + " holds " + std::to_string(have) + " values, expected " +
                    std::to_string(n));
    if (!l.b.empty() && l.b.size() != size_t(out))
        throw Error("model weights: the bias of " + what + " has " + std::to_string(l.b.size()) + " values, expected " +
                    std::to_string(out));
}

void check_norm(const std::vector<float>& v, int n, const std::string& what) {
    if (v.size() != size_t(n))
        throw Error("model weights: " + what + " has " + std::to_string(v.size()) + " values, expected " +
                    std::to_string(n));
}

void check_weights(const ModelConfig& c, const ModelWeights& w) {
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim, I = c.intermediate_size;
    check_linear(w.embed, c.vocab_size, H, "the embedding");
    if (w.layers.empty() || w.layers.size() != size_t(c.num_layers))
        throw Error("model weights: " + std::to_string(w.layers.size()) + " layers, expected " +
                    std::to_string(c.num_layers));
    if (!w.lm_head && !c.tie_word_embeddings) throw Error("model weights: no lm_head (and tie_word_embeddings is false)");
    // One type for every layer matrix, except that an int4 model keeps in int8 a matrix whose
    // shape int4 panels cannot hold (Linear::set).
    const auto kind = [](WeightType t) { return t == WeightType::INT4 ? WeightType::INT8 : t; };
    const WeightType type = kind(w.layers[0].qkv.type);
    for (size_t l = 0; l < w.layers.size(); l++) {
        const LayerWeights& L = w.layers[l];
        const std::string at = " of layer " + std::to_string(l);
        check_norm(L.attn_norm, H, "the attention norm" + at);
        check_norm(L.mlp_norm, H, "the MLP norm" + at);
        check_linear(L.qkv, Q + 2 * KV, H, "q/k/v" + at);
        check_linear(L.o, H, Q, "o" + at);
        check_linear(L.gate_up, 2 * I, H, "gate/up" + at);
        check_linear(L.down, H, I, "down" + at);
        for (const Linear* m : {&L.qkv, &L.o, &L.gate_up, &L.down})
            if (kind(m->type) != type) throw Error("model weights: matrices of more than one weight type" + at);
    }
    check_norm(w.final_norm, H, "the final norm");
    if (w.lm_head) check_linear(*w.lm_head, c.vocab_size, H, "lm_head");
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& opts) {
    struct stat sb {};
    if (::stat(dir.c_str(), &sb) != 0) throw file_error(dir, "no such model folder");
    if (!S_ISDIR(sb.st_mode)) throw file_error(dir, "not a folder (give the model folder, not a file)");
    ModelConfig cfg = ModelConfig::from_dir(dir);
    std::optional<Tokenizer> tok;
    if (opts.load_tokenizer) {
        tok = Tokenizer::from_model_dir(dir);
        resolve_tokens(cfg, *tok);
    }
    SafeTensors st = SafeTensors::open_model_dir(dir);
    const WeightType wt = opts.weight_type ? *opts.weight_type
                          : cfg.parameter_count() > 1000000 ? WeightType::BF16
                                                            : WeightType::F32;
    ModelWeights w = load_weights(st, cfg, wt, opts.progress);
    return from_weights(std::move(cfg), std::move(w), std::move(tok));
}

std::unique_ptr<Model> Model::from_weights(ModelConfig cfg, ModelWeights weights, std::optional<Tokenizer> tokenizer) {
    check_weights(cfg, weights);
    auto m = std::unique_ptr<Model>(new Model());
    m->cfg_ = std::move(cfg);
    const ModelConfig& c = m->cfg_;
    if (tokenizer) {
        m->mask_id_ = resolve_tokens(m->cfg_, *tokenizer);
        m->tok_ = std::move(*tokenizer);
        m->has_tok_ = true;
    }
    m->wtype_ = weights.layers[0].qkv.type;
    for (const LayerWeights& L : weights.layers)
        for (const Linear* l : {&L.qkv, &L.o, &L.gate_up, &L.down})
            if (l->type == WeightType::INT4) m->wtype_ = WeightType::INT4;
    m->embed_ = std::move(weights.embed);
    m->layers_ = std::move(weights.layers);
    m->final_norm_ = std::move(weights.final_norm);
    if (weights.lm_head) {
        m->lm_head_own_ = std::move(*weights.lm_head);
        m->lm_head_ = &m->lm_head_own_;
    } else {
        m->lm_head_ = &m->embed_;
    }
    m->inv_freq_.resize(size_t(c.head_dim / 2));
    for (int i = 0; i < c.head_dim / 2; i++)
        m->inv_freq_[size_t(i)] = 1.0 / std::pow(c.rope_theta, double(2 * i) / c.head_dim);
    return m;
}

KVCache Model::make_cache() const {
    KVCache c;
    c.init(cfg_.num_layers, cfg_.num_kv_heads * cfg_.head_dim);
    return c;
}

size_t Model::weight_bytes() const {
    size_t n = embed_.bytes() + final_norm_.size() * 4 + lm_head_own_.bytes();
    for (auto& L : layers_)
        n += (L.attn_norm.size() + L.mlp_norm.size()) * 4 + L.qkv.bytes() + L.o.bytes() + L.gate_up.bytes() +
             L.down.bytes();
    return n;
}

}  // namespace fdl
