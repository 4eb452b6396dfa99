// The architecture table (engine/model/architecture.h): the built-in families, the refusal of an
// unknown name, and a family added from outside the engine. That family is the tiny fixture's
// layout (Fast-dLLM v2) under other tensor names, config keys and architecture name: registered
// here, it must load a renamed copy of fixtures/tiny/model and decode traces.json exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/decode/generate.h"
#include "engine/io/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/architecture.h"
#include "engine/testing/random_model.h"
#include "engine/testing/random_weights.h"

using namespace fdl;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kTiny = FIXTURES_DIR "/tiny/model";
const std::string kRenamed = "RenamedDiffusionForCausalLM";

// The family: Fast-dLLM v2 with GPT-2 style names. Its intermediate size sits in a nested object
// that no key can name, so a read_config hook reads it.
Architecture renamed_family() {
    Architecture a = fast_dllm_qwen_architecture();
    a.name = kRenamed;
    a.model_type = "renamed_dllm";
    a.family = "Renamed";
    ConfigKeys& k = a.config;
    k.hidden_size = "n_embd";
    k.num_layers = "n_layer";
    k.num_heads = "n_head";
    k.num_kv_heads = "n_head_kv";
    k.vocab_size = "n_vocab";
    k.block_size = "diffusion_block";
    k.intermediate_size = "";
    a.read_config = [](const json& j, const std::string& file, ModelConfig& c) {
        if (!j.contains("mlp") || !j["mlp"].contains("inner") || !j["mlp"]["inner"].is_number_integer())
            throw file_error(file, "missing \"mlp\": {\"inner\": N}");
        c.intermediate_size = j["mlp"]["inner"].get<int>();
    };
    TensorNames& t = a.tensors;
    t.embed = "transformer.wte.weight";
    t.attn_norm = "transformer.h.{L}.ln_1.weight";
    t.mlp_norm = "transformer.h.{L}.ln_2.weight";
    const std::string h = "transformer.h.{L}.";
    t.q = {h + "attn.q.weight", h + "attn.q.bias"};
    t.k = {h + "attn.k.weight", h + "attn.k.bias"};
    t.v = {h + "attn.v.weight", h + "attn.v.bias"};
    t.o = {h + "attn.o.weight", ""};
    t.gate = {h + "mlp.gate.weight", ""};
    t.up = {h + "mlp.up.weight", ""};
    t.down = {h + "mlp.down.weight", ""};
    t.final_norm = "transformer.ln_f.weight";
    t.lm_head = "head.weight";
    return a;
}

// Registered once per process (a second registration of the name is refused).
const Architecture& renamed() {
    static const Architecture* a = [] {
        register_architecture(renamed_family());
        return find_architecture(kRenamed);
    }();
    return *a;
}

// config.json of the fixture in the renamed family's keys.
json renamed_config() {
    json j = json::parse(std::ifstream(kTiny + "/config.json"));
    j["architectures"] = {kRenamed};
    const std::pair<const char*, const char*> keys[] = {
        {"hidden_size", "n_embd"},   {"num_hidden_layers", "n_layer"}, {"num_attention_heads", "n_head"},
        {"num_key_value_heads", "n_head_kv"}, {"vocab_size", "n_vocab"}, {"bd_size", "diffusion_block"}};
    for (const auto& [from, to] : keys) {
        j[to] = j[from];
        j.erase(from);
    }
    j["mlp"] = {{"inner", j["intermediate_size"]}};
    j.erase("intermediate_size");
    return j;
}

// A copy of the tiny fixture model in the renamed family: tokenizer as it is, config.json in its
// keys, every tensor under its name (the same bytes).
class RenamedCopy : public ::testing::Test {
protected:
    void SetUp() override {
        renamed();
        dir = fs::temp_directory_path() / ("fastdllm_arch_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
        fs::copy_file(kTiny + "/tokenizer.json", dir / "tokenizer.json");
        std::ofstream(dir / "config.json") << renamed_config().dump(2);
        // The two families list the same tensors in the same order; only the names differ.
        const ModelConfig shape = ModelConfig::from_dir(kTiny);
        const std::vector<CheckpointTensor> from = checkpoint_tensors(*shape.arch, shape);
        const std::vector<CheckpointTensor> to = checkpoint_tensors(renamed(), shape);
        ASSERT_EQ(from.size(), to.size());
        for (size_t i = 0; i < from.size(); i++) rename[from[i].name] = to[i].name;
        SafeTensors st = SafeTensors::open_file(kTiny + "/model.safetensors");
        ASSERT_EQ(st.names().size(), rename.size());
        std::vector<TensorToWrite> out;
        for (const std::string& n : st.names()) {
            ASSERT_TRUE(rename.count(n)) << n;
            const TensorView& t = st.get(n);
            out.push_back({rename[n], t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
        }
        write_safetensors((dir / "model.safetensors").string(), out);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path dir;
    std::map<std::string, std::string> rename;  // built-in name -> the family's
};

// Logits of one 48-token pass with the given mask.
std::vector<float> logits_of(Model& m, AttnMask mask) {
    std::vector<int32_t> ids(48);
    for (int i = 0; i < 48; i++) ids[size_t(i)] = (i * 37 + 11) % m.config().vocab_size;
    KVCache c = m.make_cache();
    c.reserve(48);
    std::vector<float> out(size_t(48) * m.config().vocab_size);
    m.forward(c, {ids.data(), 48, 0, 48, mask, 16, 0, 48}, out.data());
    return out;
}

std::string load_error(const std::string& dir) {
    try {
        Model::load(dir);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Architectures, BuiltInFamilies) {
    const std::vector<std::string> names = architecture_names();
    ASSERT_GE(names.size(), 2u);
    EXPECT_EQ(names[0], "Qwen2ForCausalLM");
    EXPECT_EQ(names[1], "Fast_dLLM_QwenForCausalLM");

    const Architecture* ar = find_architecture("Qwen2ForCausalLM");
    ASSERT_NE(ar, nullptr);
    EXPECT_FALSE(ar->block_diffusion);
    EXPECT_EQ(ar->mask, AttnMask::Causal);
    EXPECT_EQ(ar->tensors.embed, "model.embed_tokens.weight");
    EXPECT_EQ(layer_tensor(ar->tensors.q.bias, 7), "model.layers.7.self_attn.q_proj.bias");
    EXPECT_TRUE(ar->tensors.o.bias.empty());

    const Architecture* dllm = find_architecture("Fast_dLLM_QwenForCausalLM");
    ASSERT_NE(dllm, nullptr);
    EXPECT_TRUE(dllm->block_diffusion);
    EXPECT_EQ(dllm->mask, AttnMask::BlockCausal);
    EXPECT_EQ(dllm->mask_token, "|<MASK>|");
    EXPECT_EQ(dllm->config.block_size, "bd_size");

    // parse keeps the entry and fills is_diffusion from it.
    const ModelConfig c = ModelConfig::from_dir(kTiny);
    EXPECT_EQ(c.arch, dllm);
    EXPECT_TRUE(c.is_diffusion);
    EXPECT_EQ(find_architecture("LlamaForCausalLM"), nullptr);
}

TEST(Architectures, UnknownNameIsRefusedNamingTheRegisteredOnes) {
    renamed();
    try {
        ModelConfig::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})", "config.json");
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("config.json: unknown architecture \"LlamaForCausalLM\""), std::string::npos) << msg;
        for (const std::string name : {"Qwen2ForCausalLM", "Fast_dLLM_QwenForCausalLM", kRenamed.c_str()})
            EXPECT_NE(msg.find(name), std::string::npos) << msg;
    }
}

TEST(Architectures, RefusesATakenNameAndIncompleteEntries) {
    EXPECT_THROW(register_architecture(qwen2_architecture()), Error);
    Architecture a = qwen2_architecture();
    a.name = "NoLayerIndex";
    a.tensors.mlp_norm = "model.post_attention_layernorm.weight";  // every layer would read one tensor
    EXPECT_THROW(register_architecture(a), Error);
    Architecture b = fast_dllm_qwen_architecture();
    b.name = "NoMaskToken";
    b.mask_token.clear();
    EXPECT_THROW(register_architecture(b), Error);
    EXPECT_EQ(find_architecture("NoLayerIndex"), nullptr);
    EXPECT_EQ(find_architecture("NoMaskToken"), nullptr);
}

TEST(Architectures, ConfigKeysAndHookOfAnAddedFamily) {
    renamed();
    json j = renamed_config();
    j["mlp"]["inner"] = 96;
    const ModelConfig c = ModelConfig::parse(j.dump(), "config.json");
    EXPECT_EQ(c.arch, &renamed());
    EXPECT_TRUE(c.is_diffusion);
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.num_kv_heads, 2);
    EXPECT_EQ(c.intermediate_size, 96);
    EXPECT_EQ(c.bd_size, 32);
    EXPECT_NE(c.describe().find("block-diffusion Renamed"), std::string::npos) << c.describe();
    j.erase("mlp");
    EXPECT_THROW(ModelConfig::parse(j.dump(), "config.json"), Error);
}

// The copy computes the fixture's logits bit for bit and reproduces every decoding trace.
TEST_F(RenamedCopy, LoadsAndDecodesTheFixtureTraces) {
    auto model = Model::load(dir.string());
    auto original = Model::load(kTiny);
    EXPECT_EQ(model->config().architecture, kRenamed);
    EXPECT_EQ(model->config().arch, &renamed());
    const json all = json::parse(std::ifstream(FIXTURES_DIR "/tiny/traces.json"));
    EXPECT_EQ(model->mask_token_id(), all["mask_token_id"].get<int>());
    EXPECT_EQ(model->weight_bytes(), original->weight_bytes());
    EXPECT_EQ(logits_of(*model, AttnMask::Causal), logits_of(*original, AttnMask::Causal));
    EXPECT_EQ(logits_of(*model, AttnMask::BlockCausal), logits_of(*original, AttnMask::BlockCausal));

    int checked = 0;
    for (const json& t : all["traces"]) {
        GenerateOptions o;
        o.mode = t["mode"] == "ar" ? DecodeMode::AR : DecodeMode::Diffusion;
        o.max_new_tokens = t["max_new_tokens"];
        o.cache = CacheMode::Prefix;
        if (o.mode == DecodeMode::Diffusion) {
            o.block_size = t["block_size"];
            o.sub_block_size = t["sub_block_size"];
            o.threshold = t["threshold"];
            if (t["dual_cache"].get<bool>()) o.cache = CacheMode::Dual;
        }
        KVCache cache = model->make_cache();
        const GenerateResult r = generate(*model, cache, t["prompt"].get<std::vector<int32_t>>(), o);
        EXPECT_EQ(r.tokens, t["tokens"].get<std::vector<int32_t>>()) << "trace " << checked;
        EXPECT_EQ(r.stats.nfe, t["nfe"].get<int>()) << "trace " << checked;
        checked++;
    }
    EXPECT_GT(checked, 0);
}

// Under the built-in names the family finds none of its tensors.
TEST_F(RenamedCopy, RefusesTheBuiltInTensorNames) {
    fs::copy_file(kTiny + "/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
    const std::string err = load_error(dir.string());
    EXPECT_NE(err.find("missing tensor transformer.wte.weight"), std::string::npos) << err;
}

// One renamed tensor missing: the error names it in the family's names.
TEST_F(RenamedCopy, NamesAMissingTensorInTheFamilysNames) {
    std::vector<TensorToWrite> out;
    {
        SafeTensors st = SafeTensors::open_file((dir / "model.safetensors").string());
        for (const std::string& n : st.names()) {
            if (n == "transformer.h.1.attn.k.bias") continue;
            const TensorView& t = st.get(n);
            out.push_back({n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
        }
    }
    write_safetensors((dir / "model.safetensors").string(), out);
    const std::string err = load_error(dir.string());
    EXPECT_NE(err.find("missing tensor transformer.h.1.attn.k.bias"), std::string::npos) << err;
}

// mkmodel's writer follows the table too: a random model of the added family has its tensor
// names and config keys, and loads.
TEST(Architectures, RandomCheckpointOfAnAddedFamily) {
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_arch_random_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    RandomModelSpec spec;
    ModelConfig& c = spec.shape;
    ASSERT_TRUE(published_shape("qwen2.5-0.5b", true, c));
    c.architecture = kRenamed;
    c.arch = &renamed();
    c.hidden_size = 64, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
    c.intermediate_size = 96, c.vocab_size = 300, c.tie_word_embeddings = false, c.eos_token_ids = {1};
    spec.dtype = "f32";
    write_random_model(dir.string(), spec);
    // The writer knows keys only: the hook's value goes in by hand.
    json cfg = json::parse(std::ifstream(dir / "config.json"));
    EXPECT_TRUE(cfg.contains("n_embd") && !cfg.contains("hidden_size")) << cfg.dump();
    cfg["mlp"] = {{"inner", c.intermediate_size}};
    std::ofstream(dir / "config.json") << cfg.dump();

    SafeTensors st = SafeTensors::open_model_dir(dir.string());
    std::vector<std::string> want;
    for (const CheckpointTensor& t : checkpoint_tensors(renamed(), c)) want.push_back(t.name);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(st.names(), want);
    LoadOptions o;
    o.load_tokenizer = false;
    auto m = Model::load(dir.string(), o);
    EXPECT_EQ(m->config().intermediate_size, 96);
    EXPECT_EQ(m->weight_type(), WeightType::F32);
    fs::remove_all(dir);
}

// random_model: one seed, one model; and from_weights checks the weights against the shape.
TEST(Architectures, RandomWeightsAreSeededAndChecked) {
    ModelConfig c = ModelConfig::from_dir(kTiny);
    auto a = random_model(c, WeightType::F32, 3), b = random_model(c, WeightType::F32, 3);
    auto d = random_model(c, WeightType::F32, 4);
    EXPECT_EQ(logits_of(*a, AttnMask::Causal), logits_of(*b, AttnMask::Causal));
    EXPECT_NE(logits_of(*a, AttnMask::Causal), logits_of(*d, AttnMask::Causal));
    EXPECT_FALSE(a->has_tokenizer());
    EXPECT_EQ(a->mask_token_id(), -1);

    ModelConfig bigger = c;
    bigger.num_layers = 3;
    ModelWeights w;
    w.embed.in = c.hidden_size;
    w.embed.out = c.vocab_size;
    w.embed.set(std::vector<float>(size_t(c.hidden_size) * c.vocab_size, 0.f), WeightType::F32);
    try {
        Model::from_weights(bigger, std::move(w));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("0 layers, expected 3"), std::string::npos) << e.what();
    }
}
