// Faults beyond tests/test_load_errors.cpp: corrupted (not just truncated) weight files, broken
// shard indexes, weights full of NaN, and a full disk while a session is saved (the previous file
// must stay intact). Every one is a one-line fdl::Error, never a crash.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/io/files.h"
#include "engine//chat/chat_session.h"
#include "engine/io/error.h"
#include "tests/model_copy_fixture.h"
#include "engine/decode/generate.h"
#include "engine/io/safetensors.h"

using namespace fdl;
namespace fs = std::filesystem;

namespace {

class Faults : public ModelCopyTest {
protected:
    Faults() : ModelCopyTest("fastdllm_faults_") {}

    std::string load_error() {
        try {
            Model::load(dir.string());
        } catch (const Error& e) {
            const std::string m = e.what();
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            return m;
        }
        return "";
    }
    void write(const std::string& name, const std::string& text) { std::ofstream(dir / name, std::ios::binary) << text; }
    std::string read(const std::string& name) {
        std::ifstream in(dir / name, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    // Splits model.safetensors into two shards plus an index; `edit` may change the weight map.
    void shard(const std::function<void(nlohmann::json&)>& edit = nullptr) {
        std::vector<TensorToWrite> a, b;
        nlohmann::json wm = nlohmann::json::object();
        {
            SafeTensors st = SafeTensors::open_file((dir / "model.safetensors").string());
            const auto names = st.names();
            for (size_t i = 0; i < names.size(); i++) {
                const TensorView& t = st.get(names[i]);
                TensorToWrite w{names[i], t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
                const bool first = i < names.size() / 2;
                wm[names[i]] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
                (first ? a : b).push_back(std::move(w));
            }
        }
        write_safetensors((dir / "model-00001-of-00002.safetensors").string(), a);
        write_safetensors((dir / "model-00002-of-00002.safetensors").string(), b);
        fs::remove(dir / "model.safetensors");
        nlohmann::json idx = {{"metadata", {{"total_size", 0}}}, {"weight_map", wm}};
        if (edit) edit(idx);
        write("model.safetensors.index.json", idx.dump());
    }
};

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_F(Faults, ShardedCopyLoads) {
    shard();
    EXPECT_EQ(load_error(), "");
}

TEST_F(Faults, CorruptedHeaderJson) {
    std::string data = read("model.safetensors");
    for (size_t i = 40; i < 60; i++) data[i] = '#';
    write("model.safetensors", data);
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "model.safetensors: bad safetensors header JSON")) << e;
}

TEST_F(Faults, HeaderLengthCorrupted) {
    std::string data = read("model.safetensors");
    data[6] = '\x7f';  // header length ~ 2^54
    write("model.safetensors", data);
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "model.safetensors: header length")) << e;
}

TEST_F(Faults, OffsetsCorrupted) {
    // Same length, different numbers: the first tensor's offsets no longer match its shape.
    std::string data = read("model.safetensors");
    const size_t p = data.find("\"data_offsets\":[0,");
    ASSERT_NE(p, std::string::npos);
    data[p + 16] = '1';
    write("model.safetensors", data);
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "do not match shape and dtype")) << e;
}

TEST_F(Faults, EmptyWeightsFile) {
    write("model.safetensors", "");
    EXPECT_TRUE(has(load_error(), "file too small to be safetensors (0 bytes)"));
}

TEST_F(Faults, WeightsPathIsAFolder) {
    fs::remove(dir / "model.safetensors");
    fs::create_directory(dir / "model.safetensors");
    EXPECT_TRUE(has(load_error(), "model.safetensors: not a regular file"));
}

TEST_F(Faults, IndexWithBadJson) {
    shard();
    write("model.safetensors.index.json", "{\"weight_map\": {");
    EXPECT_TRUE(has(load_error(), "model.safetensors.index.json: invalid JSON"));
}

TEST_F(Faults, IndexWithoutWeightMap) {
    shard();
    write("model.safetensors.index.json", "{\"metadata\": {}}");
    EXPECT_TRUE(has(load_error(), "model.safetensors.index.json: no \"weight_map\" object"));
}

TEST_F(Faults, IndexNamesATensorTheShardLacks) {
    shard([](nlohmann::json& j) { j["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors"; });
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "model-00001-of-00002.safetensors: tensor model.extra.weight listed in the index is not in this shard")) << e;
}

TEST_F(Faults, IndexNamesAFileOutsideTheFolder) {
    shard([](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = "../model-00001-of-00002.safetensors"; });
    EXPECT_TRUE(has(load_error(), "names an invalid file \"../model-00001-of-00002.safetensors\""));
}

TEST_F(Faults, IndexNamesTheSameTensorInTwoShards) {
    shard();
    SafeTensors a = SafeTensors::open_file((dir / "model-00001-of-00002.safetensors").string());
    const std::string name = a.names().front();
    // Add that tensor to shard 2 as well, and list it there too (the index can name each only once,
    // so the duplicate is found while merging).
    std::vector<TensorToWrite> b;
    {
        SafeTensors st = SafeTensors::open_file((dir / "model-00002-of-00002.safetensors").string());
        for (auto& n : st.names()) {
            const TensorView& t = st.get(n);
            b.push_back({n, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
        }
        const TensorView& t = a.get(name);
        b.push_back({name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    }
    write_safetensors((dir / "model-00002-of-00002.safetensors").string(), b);
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "tensor " + name + " appears in two shards")) << e;
}

TEST_F(Faults, TruncatedShard) {
    shard();
    const std::string s = read("model-00002-of-00002.safetensors");
    write("model-00002-of-00002.safetensors", s.substr(0, s.size() / 2));
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "model-00002-of-00002.safetensors: tensor")) << e;
    EXPECT_TRUE(has(e, "extends past the end of the file")) << e;
}

TEST_F(Faults, TruncatedTokenizerJson) {
    const std::string t = read("tokenizer.json");
    write("tokenizer.json", t.substr(0, t.size() / 2));
    const std::string e = load_error();
    EXPECT_TRUE(has(e, "tokenizer.json: invalid JSON")) << e;
}

// Weights that are all NaN load (the file is well formed) and decode without crashing: every
// token produced is inside the vocabulary.
TEST_F(Faults, NaNWeightsDecodeWithoutCrashing) {
    std::vector<TensorToWrite> out;
    {
        SafeTensors st = SafeTensors::open_file((dir / "model.safetensors").string());
        for (auto& n : st.names()) {
            const TensorView& t = st.get(n);
            out.push_back({n, t.dtype, t.shape, std::vector<uint8_t>(t.nbytes, 0xFF)});  // BF16 0xFFFF = NaN
        }
    }
    write_safetensors((dir / "model.safetensors").string(), out);
    auto model = Model::load(dir.string());
    for (DecodeMode mode : {DecodeMode::Diffusion, DecodeMode::AR}) {
        GenerateOptions o;
        o.mode = mode;
        o.max_new_tokens = 32;
        for (float temp : {0.f, 0.8f}) {
            o.sampling.temperature = temp;
            KVCache cache = model->make_cache();
            try {
                const GenerateResult r = generate(*model, cache, {381, 5, 6, 7}, o);
                for (int32_t t : r.tokens) EXPECT_TRUE(t >= 0 && t < model->config().vocab_size) << t;
                (void)model->tokenizer().decode(r.tokens);
            } catch (const Error& e) {
                SUCCEED() << e.what();  // a clear error is fine too
            }
        }
    }
}

// A full disk while the session is saved: write() fails half way. RLIMIT_FSIZE makes write()
// fail with EFBIG exactly like ENOSPC would, without needing a small filesystem.
TEST(SessionSave, FullDiskKeepsThePreviousFile) {
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_fulldisk_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string path = (dir / "session.json").string();
    write_file_atomic(path, "{\"messages\": []}\n");

    struct rlimit old {};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    struct sigaction ign {}, prev {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGXFSZ, &ign, &prev);
    struct rlimit small = old;
    small.rlim_cur = 4096;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    std::string error;
    try {
        write_file_atomic(path, std::string(100000, 'x'));
    } catch (const Error& e) {
        error = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::sigaction(SIGXFSZ, &prev, nullptr);

    EXPECT_TRUE(has(error, path + ": write failed: File too large")) << error;
    std::ifstream in(path);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{\"messages\": []}\n");
    int files = 0;
    for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    EXPECT_EQ(files, 1) << "the temporary file was left behind";
    fs::remove_all(dir);
}

TEST(SessionSave, MissingFolderIsAClearError) {
    try {
        write_file_atomic("/nonexistent-dir/session.json", "{}");
        FAIL();
    } catch (const Error& e) {
        EXPECT_TRUE(has(e.what(), "/nonexistent-dir/session.json: cannot write: No such file or directory")) << e.what();
    }
}

// Text typed into the chat can be any bytes; the model sees invalid UTF-8 as U+FFFD. The session
// must still save (valid JSON), and load back.
TEST(SessionSave, InvalidUtf8MessageStillSaves) {
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ChatSession s(*model);
    GenerateOptions o;
    o.max_new_tokens = 32;
    s.reply("bad \xff\xfe bytes \xc3", o);
    std::string text;
    ASSERT_NO_THROW(text = s.to_json().dump(2));
    ChatSession back(*model);
    ASSERT_NO_THROW(back.from_json(nlohmann::json::parse(text)));
    EXPECT_EQ(back.messages().size(), 2u);
}
