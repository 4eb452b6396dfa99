// Limits: a prompt longer than the model's context is refused before any work; the memory a KV
// cache or a model's weights need is checked before it is allocated, and a request that cannot
// fit fails with a one-line error naming the sizes (not the OOM killer).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/io/error.h"
#include "engine/decode/generate.h"
#include "engine/io/memory.h"

using namespace fdl;
namespace fs = std::filesystem;

namespace {

const std::unique_ptr<Model>& tiny() {
    static std::unique_ptr<Model> m = Model::load(FIXTURES_DIR "/tiny/model");
    return m;
}

std::string generate_error(const std::vector<int32_t>& prompt, const GenerateOptions& o) {
    KVCache cache = tiny()->make_cache();
    try {
        generate(*tiny(), cache, prompt, o);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(Limits, PromptLongerThanTheContextIsRefused) {
    const int ctx = tiny()->config().max_position_embeddings;  // 4096
    for (DecodeMode mode : {DecodeMode::Diffusion, DecodeMode::AR}) {
        GenerateOptions o;
        o.mode = mode;
        o.max_new_tokens = 32;
        const std::string e = generate_error(std::vector<int32_t>(size_t(ctx) + 10, 5), o);
        EXPECT_TRUE(has(e, "exceed the model's context of 4096 positions")) << e;
        EXPECT_TRUE(has(e, "prompt (4106 tokens)")) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos);
    }
}

TEST(Limits, PromptPlusAnswerLongerThanTheContextIsRefused) {
    GenerateOptions o;
    o.max_new_tokens = 256;
    const std::string e = generate_error(std::vector<int32_t>(4000, 5), o);
    EXPECT_TRUE(has(e, "max new tokens (256) + 2 blocks of slack (64) exceed the model's context")) << e;
}

TEST(Limits, PromptThatFitsIsAccepted) {
    GenerateOptions o;
    o.max_new_tokens = 32;
    KVCache cache = tiny()->make_cache();
    const GenerateResult r = generate(*tiny(), cache, std::vector<int32_t>(1000, 5), o);
    EXPECT_GE(r.stats.generated_tokens, 1);
}

TEST(Limits, AvailableMemoryIsKnownOnLinux) {
    const uint64_t a = available_memory();
    EXPECT_GT(a, 0u);
    EXPECT_LT(a, UINT64_MAX);
}

TEST(Limits, FormatBytes) {
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(3 << 10), "3 KiB");
    EXPECT_EQ(format_bytes(320ull << 20), "320 MiB");
    EXPECT_EQ(format_bytes(3ull << 29), "1.5 GiB");
}

TEST(Limits, KVCacheThatCannotFitIsRefusedBeforeAllocating) {
    KVCache c;
    c.init(1024, 65536);  // 512 MiB per position
    try {
        c.reserve(1 << 20);
        FAIL() << "a 512 TiB KV cache was allocated";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_TRUE(has(m, "a KV cache of 1048576 positions (1024 layers x 65536")) << m;
        EXPECT_TRUE(has(m, "needs 524288.0 GiB, but only")) << m;
        EXPECT_TRUE(has(m, "of memory is available")) << m;
    }
    EXPECT_EQ(c.capacity, 0);  // unchanged: nothing allocated
    EXPECT_TRUE(c.k.empty());
}

TEST(Limits, AbsurdKVCacheSizeIsRefused) {
    KVCache c;
    c.init(1, 1);
    EXPECT_THROW(c.reserve((1 << 30) + 1), Error);
    c.reserve(100);  // a small one still works
    EXPECT_EQ(c.capacity, 256);
}

TEST(Limits, KVCacheThatFitsKeepsItsRowsWhenGrown) {
    KVCache c = tiny()->make_cache();
    c.reserve(10);
    c.k_row(1, 5)[3] = 7.f;
    c.reserve(1000);
    EXPECT_EQ(c.capacity, 1024);
    EXPECT_EQ(c.k_row(1, 5)[3], 7.f);
}

TEST(Limits, ModelTooLargeForMemoryFailsNamingTheSizes) {
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_huge_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (auto& e : fs::directory_iterator(FIXTURES_DIR "/tiny/model")) fs::copy_file(e.path(), dir / e.path().filename());
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir / "config.json"));
    cfg["hidden_size"] = 65536;  // ~4 trillion parameters: no machine holds them
    cfg["intermediate_size"] = 1 << 20;
    cfg["num_hidden_layers"] = 1024;
    cfg["num_attention_heads"] = 512;
    cfg["num_key_value_heads"] = 512;
    fs::permissions(dir / "config.json", fs::perms::owner_write, fs::perm_options::add);
    std::ofstream(dir / "config.json") << cfg.dump();
    std::string m;
    try {
        Model::load(dir.string());
    } catch (const Error& e) {
        m = e.what();
    }
    fs::remove_all(dir);
    EXPECT_TRUE(has(m, dir.string() + ": loading the weights (")) << m;
    EXPECT_TRUE(has(m, "parameters as bf16) needs")) << m;
    EXPECT_TRUE(has(m, "GiB, but only")) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
}
