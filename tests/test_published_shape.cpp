// The file layout and shapes of the published checkpoints (head_dim 128, tied embeddings,
// vocab 151936 > tokenizer, sharded BF16, mask token only in added_tokens.json), on a small
// random model written by the project's own generator.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/decode/generate.h"
#include "engine/testing/random_model.h"

using namespace fdl;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Model>& qwen_shaped() {
    static std::unique_ptr<Model> m = [] {
        const fs::path dir = fs::temp_directory_path() / ("fastdllm_qwenshape_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        RandomModelSpec spec;
        ModelConfig& c = spec.shape;
        EXPECT_TRUE(published_shape("qwen2.5-1.5b", true, c));
        c.hidden_size = 256;  // keep the per-head shape and the vocabulary, shrink the rest
        c.num_layers = 2;
        c.num_heads = 2;
        c.num_kv_heads = 1;
        c.intermediate_size = 512;
        spec.dtype = "bf16";
        spec.shard_bytes = 40 << 20;
        spec.tokenizer_json = FIXTURES_DIR "/tokenizer-qwen2.5/tokenizer.json";
        spec.mask_token_id = 151665;
        write_random_model(dir.string(), spec);
        EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
        EXPECT_TRUE(fs::exists(dir / "model-00002-of-00002.safetensors"));
        auto model = Model::load(dir.string());
        fs::remove_all(dir);
        return model;
    }();
    return m;
}

}  // namespace

TEST(PublishedShape, LoadsShardedTiedBf16) {
    Model& m = *qwen_shaped();
    EXPECT_EQ(m.config().head_dim, 128);
    EXPECT_TRUE(m.config().tie_word_embeddings);
    EXPECT_EQ(m.config().vocab_size, 151936);
    EXPECT_EQ(m.mask_token_id(), 151665);
    EXPECT_EQ(m.config().eos_token_ids, std::vector<int32_t>{151645});
    EXPECT_GT(m.config().vocab_size, m.tokenizer().size());
}

TEST(PublishedShape, CacheModesAgree) {
    Model& m = *qwen_shaped();
    const std::vector<int32_t> prompt = m.tokenizer().encode("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n");
    GenerateOptions o;
    o.max_new_tokens = 32;
    o.threshold = 0.9f;
    o.cache = CacheMode::None;
    KVCache c1 = m.make_cache(), c2 = m.make_cache(), c3 = m.make_cache();
    GenerateResult none = generate(m, c1, prompt, o);
    o.cache = CacheMode::Prefix;
    GenerateResult prefix = generate(m, c2, prompt, o);
    EXPECT_EQ(none.tokens, prefix.tokens);
    EXPECT_EQ(none.stats.nfe, prefix.stats.nfe);
    o.cache = CacheMode::Dual;
    GenerateResult dual = generate(m, c3, prompt, o);
    EXPECT_FALSE(dual.tokens.empty());
    EXPECT_GT(dual.stats.subblock_passes, 0);
    // Detokenizing whatever came out (ids past the tokenizer included) must not crash.
    EXPECT_NO_THROW(m.tokenizer().decode(dual.tokens));
}

TEST(PublishedShape, SamplingNeverDrawsIdsWithoutToken) {
    Model& m = *qwen_shaped();
    GenerateOptions o;
    o.mode = DecodeMode::AR;
    o.max_new_tokens = 24;
    o.sampling.temperature = 5.0f;  // nearly uniform: ids past the tokenizer would show up
    o.sampling.seed = 7;
    KVCache c = m.make_cache();
    GenerateResult r = generate(m, c, {1, 2, 3}, o);
    for (int32_t t : r.tokens) {
        EXPECT_LT(t, m.tokenizer().size());
        EXPECT_NE(t, m.mask_token_id());
    }
}
