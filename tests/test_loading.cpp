// Model::load's weight paths: BF16 files kept as BF16 are packed straight from the file, every
// other combination goes through float32; both must give the same model. And the progress report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/model/model.h"
#include "engine/io/safetensors.h"

using namespace fdl;
namespace fs = std::filesystem;

namespace {

const std::string kDemo = SOURCE_DIR "/assets/models/demo-ar";

// Logits of one 24-token causal pass.
std::vector<float> logits_of(Model& m) {
    std::vector<int32_t> ids(24);
    for (int i = 0; i < 24; i++) ids[size_t(i)] = (i * 37 + 11) % 4000;
    KVCache c = m.make_cache();
    c.reserve(24);
    std::vector<float> out(size_t(24) * m.config().vocab_size);
    m.forward(c, {ids.data(), 24, 0, 24, AttnMask::Causal, 0, 0, 24}, out.data());
    return out;
}

}  // namespace

// The demo model's BF16 file, and a float32 copy of it (the same values): loaded as bf16, one
// goes the direct path and the other through float32 and rounding, which is exact here.
TEST(Loading, Bf16FileGivesTheModelOfItsFloat32Copy) {
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_f32copy_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
        if (fs::exists(kDemo + "/" + f)) fs::copy_file(kDemo + "/" + f, dir / f);
    SafeTensors st = SafeTensors::open_file(kDemo + "/model.safetensors");
    std::vector<TensorToWrite> out;
    for (const std::string& n : st.names()) {
        const TensorView& t = st.get(n);
        ASSERT_EQ(t.dtype, DType::BF16) << n;
        TensorToWrite w{n, DType::F32, t.shape, std::vector<uint8_t>(size_t(t.numel()) * 4)};
        to_f32(t, reinterpret_cast<float*>(w.bytes.data()));
        out.push_back(std::move(w));
    }
    write_safetensors((dir / "model.safetensors").string(), out);

    LoadOptions o;
    o.weight_type = WeightType::BF16;
    auto direct = Model::load(kDemo, o);
    auto via_f32 = Model::load(dir.string(), o);
    EXPECT_EQ(logits_of(*direct), logits_of(*via_f32));
    fs::remove_all(dir);
}

// Progress: called once per tensor, never backwards, ending at the checkpoint's total bytes.
TEST(Loading, ReportsProgressUpToTheTotal) {
    for (WeightType type : {WeightType::BF16, WeightType::F32, WeightType::INT8, WeightType::INT4}) {
        LoadOptions o;
        o.weight_type = type;
        std::vector<std::pair<uint64_t, uint64_t>> calls;
        o.progress = [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); };
        Model::load(kDemo, o);
        SafeTensors st = SafeTensors::open_file(kDemo + "/model.safetensors");
        uint64_t total = 0;
        for (const std::string& n : st.names()) total += st.get(n).nbytes;
        ASSERT_EQ(calls.size(), st.names().size()) << weight_type_name(type);
        for (size_t i = 1; i < calls.size(); i++) EXPECT_GT(calls[i].first, calls[i - 1].first) << weight_type_name(type);
        EXPECT_EQ(calls.back().first, total) << weight_type_name(type);
        EXPECT_EQ(calls.back().second, total) << weight_type_name(type);
    }
}

// An untied copy of the demo model (lm_head.weight = the embedding, tie_word_embeddings false):
// its lm_head is loaded like any matrix and its embedding kept only for row lookups (BF16 rows as
// in the file; int8 rows in an int4 model, the type of a tied one), and it computes the same
// logits as the tied original in bf16, f32 and int4.
TEST(Loading, UntiedCopyGivesTheLogitsOfTheTiedModel) {
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_untied_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (fs::exists(kDemo + "/" + f)) fs::copy_file(kDemo + "/" + f, dir / f);
    {
        std::ifstream in(kDemo + "/config.json");
        nlohmann::json cfg = nlohmann::json::parse(in);
        cfg["tie_word_embeddings"] = false;
        std::ofstream(dir / "config.json") << cfg.dump(2);
    }
    SafeTensors st = SafeTensors::open_file(kDemo + "/model.safetensors");
    std::vector<TensorToWrite> out;
    for (const std::string& n : st.names()) {
        const TensorView& t = st.get(n);
        out.push_back({n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
        if (n == "model.embed_tokens.weight") out.push_back({"lm_head.weight", t.dtype, t.shape, out.back().bytes});
    }
    write_safetensors((dir / "model.safetensors").string(), out);

    for (WeightType type : {WeightType::BF16, WeightType::F32, WeightType::INT4}) {
        LoadOptions o;
        o.weight_type = type;
        auto tied = Model::load(kDemo, o);
        auto untied = Model::load(dir.string(), o);
        ASSERT_FALSE(untied->config().tie_word_embeddings);
        EXPECT_EQ(logits_of(*untied), logits_of(*tied)) << weight_type_name(type);
    }
    fs::remove_all(dir);
}

// Weight matrices of 2 MB or more start on a 2 MB boundary (where a transparent huge page can
// back them); small ones come from malloc. Both are freed the same way.
TEST(Loading, LargeWeightBuffersAreHugePageAligned) {
    void* big = allocate_weights((size_t(3) << 20) + 5);
    void* small = allocate_weights(1000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % (size_t(2) << 20), 0u);
    EXPECT_NE(small, nullptr);
    std::memset(big, 1, (size_t(3) << 20) + 5);
    free_weights(big);
    free_weights(small);
    std::vector<uint16_t, WeightAllocator<uint16_t>> v(size_t(2) << 20);  // 4 MB
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % (size_t(2) << 20), 0u);
}
