// What the weights take in memory in each type: the loader's plan (which the memory check before
// loading and the load progress line use) is what loading then keeps, the 7B shape fits in 5 GB
// as int4, and a model that does not fit is refused before anything is allocated.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "engine/io/error.h"
#include "engine/model/load_progress.h"
#include "engine/model/model.h"
#include "engine/model/weight_loader.h"
#include "engine/testing/random_model.h"

using namespace fdl;

namespace {

uint64_t planned(const std::string& dir, WeightType t) {
    const ModelConfig c = ModelConfig::from_dir(dir);
    const SafeTensors st = SafeTensors::open_model_dir(dir);
    const TensorView* e = st.find("model.embed_tokens.weight");
    return planned_weight_bytes(c, t, e && e->dtype == DType::BF16, st.find("lm_head.weight") != nullptr);
}

}  // namespace

// The tiny fixture (untied, a vocabulary of 396 rows: its lm_head stays int8 in an int4 model) and
// the demo dLLM (tied, bf16 file).
TEST(WeightMemory, PlanIsWhatLoadingKeeps) {
    for (const std::string& dir : {std::string(FIXTURES_DIR "/tiny/model"), std::string(SOURCE_DIR "/assets/models/demo-dllm")}) {
        for (WeightType t : {WeightType::F32, WeightType::BF16, WeightType::INT8, WeightType::INT4}) {
            LoadOptions o;
            o.weight_type = t;
            o.load_tokenizer = false;
            auto m = Model::load(dir, o);
            EXPECT_EQ(m->weight_type(), t) << dir;
            EXPECT_EQ(m->weight_bytes(), planned(dir, t)) << dir << " " << weight_type_name(t);
        }
    }
    LoadOptions o4, o8;
    o4.weight_type = WeightType::INT4;
    o8.weight_type = WeightType::INT8;
    const std::string demo = SOURCE_DIR "/assets/models/demo-dllm";
    EXPECT_LT(Model::load(demo, o4)->weight_bytes(), Model::load(demo, o8)->weight_bytes() * 7 / 10);
}

// Qwen2.5-7B (untied; BF16 file): about 4.8 GB as int4 (layers int4, lm_head and the embedding's
// rows int8), against 15.3 GB as bf16.
TEST(WeightMemory, SevenBInInt4FitsFiveGB) {
    ModelConfig c;
    ASSERT_TRUE(published_shape("qwen2.5-7b", true, c));
    const uint64_t int4 = planned_weight_bytes(c, WeightType::INT4, true, true);
    EXPECT_LT(int4, 5'000'000'000ull);
    EXPECT_GT(int4, 4'000'000'000ull);
    EXPECT_GT(planned_weight_bytes(c, WeightType::BF16, true, true), 15'000'000'000ull);
    ModelConfig small;
    ASSERT_TRUE(published_shape("qwen2.5-1.5b", true, small));
    EXPECT_LT(planned_weight_bytes(small, WeightType::INT4, true, false), 1'200'000'000ull);
}

// A model past any machine's memory (the tiny fixture's files under a config of 1.5 trillion
// parameters) is refused before a weight is read, with the plan of the type asked for.
TEST(WeightMemory, RefusedUpFrontInEveryType) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("fdl-huge-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(FIXTURES_DIR "/tiny/model/model.safetensors", dir / "model.safetensors");
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(FIXTURES_DIR "/tiny/model/config.json"));
    cfg["hidden_size"] = 16384;
    cfg["intermediate_size"] = 65536;
    cfg["num_hidden_layers"] = 400;
    cfg["num_attention_heads"] = 128;
    cfg["num_key_value_heads"] = 8;
    cfg.erase("layer_types");
    std::ofstream(dir / "config.json") << cfg.dump();
    for (WeightType t : {WeightType::BF16, WeightType::INT8, WeightType::INT4}) {
        LoadOptions o;
        o.weight_type = t;
        o.load_tokenizer = false;
        std::string message;
        try {
            Model::load(dir.string(), o);
        } catch (const Error& e) {
            message = e.what();
        }
        EXPECT_NE(message.find(std::string("parameters as ") + weight_type_name(t) + ") needs"), std::string::npos)
            << message;
    }
    fs::remove_all(dir);
}

// The loader tells the progress line what the weights will take: "... GB read; 0.0 GB as int4)".
TEST(WeightMemory, ProgressLineShowsTheWeights) {
    LoadOptions o;
    o.weight_type = WeightType::INT4;
    o.load_tokenizer = false;
    std::string shown;
    o.progress = load_progress([&](const std::string& t) { shown = t; });
    const LoadProgressLine* line = o.progress.target<LoadProgressLine>();
    ASSERT_NE(line, nullptr);
    Model::load(SOURCE_DIR "/assets/models/demo-dllm", o);
    // The demo loads in milliseconds, under the half second before a line is shown; call it later.
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    (*line)(1, 2);
    EXPECT_EQ(shown, "50% (0.0 of 0.0 GB read; 0.0 GB as int4)") << shown;
}
