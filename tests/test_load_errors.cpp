// Every bad model folder gives one clear fdl::Error naming the file and the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/io/error.h"
#include "tests/model_copy_fixture.h"
#include "engine/model/model.h"
#include "engine/io/safetensors.h"

using namespace fdl;
namespace fs = std::filesystem;

namespace {

class LoadErrors : public ModelCopyTest {
protected:
    LoadErrors() : ModelCopyTest("fastdllm_load_") {}

    // Loads and returns the error message ("" when loading succeeded).
    std::string load_error() {
        try {
            Model::load(dir.string());
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }
    void write(const std::string& name, const std::string& text) { std::ofstream(dir / name, std::ios::binary) << text; }
    std::string read(const std::string& name) {
        std::ifstream in(dir / name, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    // Rewrites model.safetensors with one tensor changed by `edit`.
    void edit_tensor(const std::string& name, const std::function<void(TensorToWrite&)>& edit) {
        std::vector<TensorToWrite> out;
        {
            SafeTensors st = SafeTensors::open_file((dir / "model.safetensors").string());
            for (auto& n : st.names()) {
                const TensorView& t = st.get(n);
                TensorToWrite w{n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
                if (n == name) edit(w);
                out.push_back(std::move(w));
            }
        }
        write_safetensors((dir / "model.safetensors").string(), out);
    }
};

#define EXPECT_ERROR_HAS(msg, a, b)             \
    do {                                        \
        const std::string m_ = (msg);           \
        EXPECT_NE(m_.find(a), std::string::npos) << m_; \
        EXPECT_NE(m_.find(b), std::string::npos) << m_; \
    } while (0)

}  // namespace

TEST_F(LoadErrors, TheUntouchedCopyLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(LoadErrors, MissingFolder) {
    fs::remove_all(dir);
    EXPECT_ERROR_HAS(load_error(), dir.string(), "no such model folder");
}

TEST_F(LoadErrors, MissingConfig) {
    fs::remove(dir / "config.json");
    EXPECT_ERROR_HAS(load_error(), "config.json", "missing");
}

TEST_F(LoadErrors, BadJsonConfig) {
    write("config.json", "{\"architectures\": [");
    EXPECT_ERROR_HAS(load_error(), "config.json", "invalid JSON");
}

TEST_F(LoadErrors, UnknownArchitecture) {
    write("config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}");
    EXPECT_ERROR_HAS(load_error(), "config.json", "unknown architecture \"LlamaForCausalLM\"");
}

TEST_F(LoadErrors, IllTypedField) {
    auto j = nlohmann::json::parse(read("config.json"));
    j["hidden_size"] = "sixty-four";
    write("config.json", j.dump());
    EXPECT_ERROR_HAS(load_error(), "config.json", "\"hidden_size\" must be an integer");
}

TEST_F(LoadErrors, MissingWeights) {
    fs::remove(dir / "model.safetensors");
    EXPECT_ERROR_HAS(load_error(), dir.string(), "no model.safetensors");
}

TEST_F(LoadErrors, TruncatedWeights) {
    std::string data = read("model.safetensors");
    write("model.safetensors", data.substr(0, data.size() - 1000));
    EXPECT_ERROR_HAS(load_error(), "model.safetensors", "extends past the end of the file");
}

TEST_F(LoadErrors, TruncatedHeader) {
    write("model.safetensors", read("model.safetensors").substr(0, 100));
    EXPECT_ERROR_HAS(load_error(), "model.safetensors", "exceeds the file");
}

TEST_F(LoadErrors, GarbageWeightsFile) {
    write("model.safetensors", "not a safetensors file at all");
    EXPECT_ERROR_HAS(load_error(), "model.safetensors", "header length");
}

TEST_F(LoadErrors, MissingTensor) {
    std::vector<TensorToWrite> out;
    {
        SafeTensors st = SafeTensors::open_file((dir / "model.safetensors").string());
        for (auto& n : st.names()) {
            if (n == "model.layers.1.mlp.up_proj.weight") continue;
            const TensorView& t = st.get(n);
            out.push_back({n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
        }
    }
    write_safetensors((dir / "model.safetensors").string(), out);
    EXPECT_ERROR_HAS(load_error(), "missing tensor", "model.layers.1.mlp.up_proj.weight");
}

TEST_F(LoadErrors, WrongShape) {
    edit_tensor("model.layers.0.self_attn.q_proj.weight", [](TensorToWrite& t) { t.shape = {32, 128}; });
    EXPECT_ERROR_HAS(load_error(), "model.layers.0.self_attn.q_proj.weight has shape [32, 128]", "expected [64, 64]");
}

TEST_F(LoadErrors, WrongDtype) {
    edit_tensor("model.norm.weight", [](TensorToWrite& t) {
        t.dtype = DType::I16;
    });
    EXPECT_ERROR_HAS(load_error(), "model.norm.weight", "dtype I16");
}

TEST_F(LoadErrors, IndexNamesMissingShard) {
    fs::rename(dir / "model.safetensors", dir / "model-00001-of-00002.safetensors");
    nlohmann::json wm = nlohmann::json::object();
    SafeTensors st = SafeTensors::open_file((dir / "model-00001-of-00002.safetensors").string());
    for (auto& n : st.names()) wm[n] = "model-00001-of-00002.safetensors";
    wm["model.norm.weight"] = "model-00002-of-00002.safetensors";
    write("model.safetensors.index.json", nlohmann::json{{"weight_map", wm}}.dump());
    EXPECT_ERROR_HAS(load_error(), "model.safetensors.index.json", "names shard model-00002-of-00002.safetensors, which is missing");
}

TEST_F(LoadErrors, MissingTokenizer) {
    fs::remove(dir / "tokenizer.json");
    EXPECT_ERROR_HAS(load_error(), "tokenizer.json", "");
}

TEST_F(LoadErrors, TokenizerWithoutMaskToken) {
    auto j = nlohmann::json::parse(read("tokenizer.json"));
    auto& added = j["added_tokens"];
    for (size_t i = 0; i < added.size(); i++)
        if (added[i]["content"] == "|<MASK>|") added.erase(i);
    write("tokenizer.json", j.dump());
    EXPECT_ERROR_HAS(load_error(), dir.string(), "no |<MASK>| token");
}

TEST_F(LoadErrors, MaskTokenFromAddedTokensJson) {
    auto j = nlohmann::json::parse(read("tokenizer.json"));
    auto& added = j["added_tokens"];
    for (size_t i = 0; i < added.size(); i++)
        if (added[i]["content"] == "|<MASK>|") added.erase(i);
    write("tokenizer.json", j.dump());
    write("added_tokens.json", "{\"|<MASK>|\": 383}");
    EXPECT_EQ(load_error(), "");
    EXPECT_EQ(Model::load(dir.string())->mask_token_id(), 383);
}
