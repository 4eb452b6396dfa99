// Replays, in the ordinary test build, every input the fuzzers of tests/fuzz/ ever failed on
// (tests/fuzz/regressions/<name>/) plus their seed corpora (tests/fuzz/corpus/<name>/), through
// the very same harness code: each fuzz_<name>.cpp is compiled in here with its entry point
// renamed. A fuzzer's property failure aborts, which fails the test; under scripts/sanitize.sh
// ASan/UBSan check the same inputs.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/args.h"
#include "app/commands.h"
#include "engine/chat/chat_session.h"
#include "engine/decode/text_stream.h"
#include "engine/io/error.h"
#include "engine/model/model_config.h"
#include "engine/io/safetensors.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/stop_strings.h"
#ifdef FASTDLLM_HAVE_UI
#include "ui/commands.h"
#include "ui/text.h"
#endif
#include "fuzz/fuzz_util.h"

// The harnesses, each in its own namespace with its own entry point.
namespace fz_safetensors {
#define LLVMFuzzerTestOneInput fuzz_one_safetensors
#include "fuzz/fuzz_safetensors.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_safetensors
namespace fz_index {
#define LLVMFuzzerTestOneInput fuzz_one_index
#include "fuzz/fuzz_index.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_index
namespace fz_config {
#define LLVMFuzzerTestOneInput fuzz_one_config
#include "fuzz/fuzz_config.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_config
namespace fz_tokenizer_json {
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_json
#include "fuzz/fuzz_tokenizer_json.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_tokenizer_json
namespace fz_tokenize {
#define LLVMFuzzerTestOneInput fuzz_one_tokenize
#include "fuzz/fuzz_tokenize.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_tokenize
namespace fz_session {
#define LLVMFuzzerTestOneInput fuzz_one_session
#include "fuzz/fuzz_session.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_session
namespace fz_args {
#define LLVMFuzzerTestOneInput fuzz_one_args
#include "fuzz/fuzz_args.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_args
namespace fz_api_request {
#define LLVMFuzzerTestOneInput fuzz_one_api_request
#include "fuzz/fuzz_api_request.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_api_request
#ifdef FASTDLLM_HAVE_UI
namespace fz_chat_input {
#define LLVMFuzzerTestOneInput fuzz_one_chat_input
#include "fuzz/fuzz_chat_input.cpp"
#undef LLVMFuzzerTestOneInput
}  // namespace fz_chat_input
#endif

// The test binary does not link the app: the two sources the args harness needs come in here.
#include "../app/args.cpp"
#include "../app/decode_flags.cpp"

namespace {

namespace fs = std::filesystem;
using Harness = int (*)(const uint8_t*, size_t);

// Runs every file of tests/fuzz/{regressions,corpus}/<name>/; returns how many.
int replay(const std::string& name, Harness h) {
    int n = 0;
    for (const char* kind : {"regressions", "corpus"}) {
        const fs::path dir = fs::path(SOURCE_DIR) / "tests/fuzz" / kind / name;
        if (!fs::is_directory(dir)) continue;
        std::vector<fs::path> files;
        for (auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (auto& f : files) {
            std::ifstream in(f, std::ios::binary);
            const std::string data((std::istreambuf_iterator<char>(in)), {});
            SCOPED_TRACE(f.string());
            h(reinterpret_cast<const uint8_t*>(data.data()), data.size());
            n++;
        }
    }
    return n;
}

}  // namespace

TEST(FuzzRegressions, Safetensors) { EXPECT_GT(replay("safetensors", fz_safetensors::fuzz_one_safetensors), 0); }
TEST(FuzzRegressions, Index) { EXPECT_GT(replay("index", fz_index::fuzz_one_index), 0); }
TEST(FuzzRegressions, Config) { EXPECT_GT(replay("config", fz_config::fuzz_one_config), 0); }
TEST(FuzzRegressions, TokenizerJson) { EXPECT_GT(replay("tokenizer_json", fz_tokenizer_json::fuzz_one_tokenizer_json), 0); }
TEST(FuzzRegressions, Tokenize) { EXPECT_GT(replay("tokenize", fz_tokenize::fuzz_one_tokenize), 0); }
TEST(FuzzRegressions, Session) { EXPECT_GT(replay("session", fz_session::fuzz_one_session), 0); }
TEST(FuzzRegressions, Args) { EXPECT_GT(replay("args", fz_args::fuzz_one_args), 0); }
TEST(FuzzRegressions, ApiRequest) { EXPECT_GT(replay("api_request", fz_api_request::fuzz_one_api_request), 0); }
#ifdef FASTDLLM_HAVE_UI
TEST(FuzzRegressions, ChatInput) { EXPECT_GT(replay("chat_input", fz_chat_input::fuzz_one_chat_input), 0); }
#endif

// Found by fuzz_config's property check: without "head_dim", a hidden_size smaller than
// num_attention_heads gave head_dim = hidden_size / heads = 0, which the parser accepted.
TEST(FuzzRegressions, ConfigHeadDimZeroIsRefused) {
    try {
        fdl::ModelConfig::parse(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 8, "vocab_size": 10})", "config.json");
        FAIL() << "accepted head_dim 0";
    } catch (const fdl::Error& e) {
        EXPECT_STREQ(e.what(), "config.json: head_dim = 0 (hidden_size / num_attention_heads) must be at least 2");
    }
}

#ifdef FASTDLLM_HAVE_UI
// Found by fuzz_chat_input: at width 1 a double-width character cannot fit any line; wrap_text
// gives it a line of its own (the property now allows exactly that), and nothing breaks.
TEST(FuzzRegressions, WideCharacterAtWidthOne) {
    const auto lines = fdl::ui::wrap_text(L"a\u7b26b\u548c", 1);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[1], L"\u7b26");
}
#endif

// Found while fuzzing the tokenizer files (beyond the fuzzer's 8 KB inputs): a tokenizer.json
// nesting its normalizer or pre_tokenizer Sequences 100000 deep overflowed the stack of the
// recursive loader (a crash, and gigabytes of path strings on the way).
TEST(FuzzRegressions, DeeplyNestedTokenizerSequences) {
    const std::string tiny = FIXTURES_DIR "/tiny/model/tokenizer.json";
    nlohmann::json base = nlohmann::json::parse(std::ifstream(tiny));
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_deep_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const char* key : {"normalizer", "pre_tokenizer"}) {
        const std::string list = std::string(key) == "normalizer" ? "normalizers" : "pretokenizers";
        const std::string leaf = base[key].dump();
        for (int depth : {3, 100000}) {
            nlohmann::json t = base;
            t[key] = "@@";
            std::string open, close;
            for (int i = 0; i < depth; i++) {
                open += "{\"type\":\"Sequence\",\"" + list + "\":[";
                close += "]}";
            }
            std::string text = t.dump();
            text.replace(text.find("\"@@\""), 4, open + leaf + close);
            const std::string path = (dir / "tokenizer.json").string();
            std::ofstream(path) << text;
            if (depth == 3) {
                EXPECT_NO_THROW(fdl::Tokenizer::from_file(path)) << key;
            } else {
                try {
                    fdl::Tokenizer::from_file(path);
                    ADD_FAILURE() << key << ": accepted";
                } catch (const fdl::Error& e) {
                    EXPECT_EQ(std::string(e.what()), path + ": \"" + key + "\": Sequences nested more than 32 deep");
                }
            }
        }
    }
    fs::remove_all(dir);
}

// Found by fuzz_safetensors (UBSan): converting an empty F32 tensor (a dimension of 0) into an
// empty buffer called memcpy(nullptr, data, 0), which is undefined behaviour.
TEST(FuzzRegressions, EmptyF32TensorConverts) {
    std::string header = R"({"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}})";
    std::string file(8, '\0');
    file[0] = char(header.size());
    file += header;
    const auto st = fdl::SafeTensors::parse(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "empty.safetensors");
    const fdl::TensorView& t = st.get("e");
    EXPECT_EQ(t.numel(), 0);
    std::vector<float> out;
    fdl::to_f32(t, out.data());  // out.data() is nullptr
}

// Found while fuzzing the request parser (beyond the fuzzer's 8 KB inputs): a message whose
// content nests lists 300000 deep (600 KB, under the server's 1 MB body limit) was copied
// recursively before its type was checked, which overflowed the stack of the connection's
// thread and ended the whole server.
TEST(FuzzRegressions, DeeplyNestedMessageContent) {
    const int depth = 300000;
    const std::string body = R"({"messages":[{"role":"user","content":)" + std::string(depth, '[') + std::string(depth, ']') + "}]}";
    fdl::server::ApiRequest r;
    const auto e = fdl::server::parse_api_request(body, true, fdl::GenerateOptions{}, fdl::server::ApiLimits{}, r);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->param, "messages[0].content");
    EXPECT_EQ(e->message, "only text content is supported (parts of type \"text\")");
}
