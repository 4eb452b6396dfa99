// Tokenizer tests: the Qwen2.5 tokenizer against HF `tokenizers` outputs (cases.json), the tiny
// fixture tokenizer, model-folder side files, streaming, errors and a 100 KB timing run.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine/io/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using fdl::StreamDetokenizer;
using fdl::Tokenizer;

namespace {

const std::string kFixtures = FIXTURES_DIR;
const std::string kQwenJson = kFixtures + "/tokenizer-qwen2.5/tokenizer.json";
const std::string kCasesJson = kFixtures + "/tokenizer-qwen2.5/cases.json";
const std::string kTinyJson = kFixtures + "/tiny/model/tokenizer.json";

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

bool valid_utf8(const std::string& s) {
    size_t i = 0;
    const auto* b = reinterpret_cast<const unsigned char*>(s.data());
    while (i < s.size()) {
        unsigned char c = b[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                                 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!len || i + len > s.size()) return false;
        for (size_t k = 1; k < len; ++k)
            if ((b[i + k] & 0xC0) != 0x80) return false;
        if (len == 3 && c == 0xE0 && b[i + 1] < 0xA0) return false;
        if (len == 3 && c == 0xED && b[i + 1] > 0x9F) return false;
        if (len == 4 && c == 0xF0 && b[i + 1] < 0x90) return false;
        if (len == 4 && c == 0xF4 && b[i + 1] > 0x8F) return false;
        i += len;
    }
    return true;
}

// A fresh temporary folder removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        static int n = 0;
        path = fs::temp_directory_path() /
               ("fdl_tok_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct Case {
    std::string text, decoded, decoded_skip;
    std::vector<int32_t> ids;
};

std::vector<Case> load_cases() {
    json j = json::parse(slurp(kCasesJson));
    std::vector<Case> out;
    for (const auto& c : j)
        out.push_back({c.at("text").get<std::string>(), c.at("decoded").get<std::string>(),
                       c.at("decoded_skip_special").get<std::string>(), c.at("ids").get<std::vector<int32_t>>()});
    return out;
}

std::string show(const std::string& s) { return json(s).dump(); }

// The Qwen tokenizer is loaded once for the whole suite (it is 6 MB).
class TokenizerQwen : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto t0 = std::chrono::steady_clock::now();
        tok_ = std::make_unique<Tokenizer>(Tokenizer::from_file(kQwenJson));
        load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    static void TearDownTestSuite() { tok_.reset(); }
    static std::unique_ptr<Tokenizer> tok_;
    static double load_ms_;
};
std::unique_ptr<Tokenizer> TokenizerQwen::tok_;
double TokenizerQwen::load_ms_ = 0;

}  // namespace

TEST_F(TokenizerQwen, LoadsWithExpectedSizes) {
    std::cout << "[tokenizer] Qwen tokenizer.json loaded in " << load_ms_ << " ms\n";
    EXPECT_LT(load_ms_, 5000.0);
    EXPECT_EQ(tok_->size(), 151666);
    EXPECT_EQ(tok_->token_id("<|endoftext|>"), 151643);
    EXPECT_EQ(tok_->token_id("<|im_start|>"), 151644);
    EXPECT_EQ(tok_->token_id("<|im_end|>"), 151645);
    EXPECT_EQ(tok_->token_id("|<MASK>|"), 151665);
    EXPECT_TRUE(tok_->is_special(151665));
    EXPECT_FALSE(tok_->is_special(9707));
    EXPECT_EQ(tok_->token_id("Hello"), 9707);
    EXPECT_EQ(tok_->token_id("no such token at all"), -1);
    EXPECT_EQ(tok_->token_bytes(tok_->token_id("Ġworld")), " world");
    EXPECT_EQ(tok_->token_bytes(151644), "<|im_start|>");
    EXPECT_TRUE(tok_->has_token(0));
    EXPECT_FALSE(tok_->has_token(151666));
}

TEST_F(TokenizerQwen, MatchesHuggingFaceCases) {
    auto cases = load_cases();
    ASSERT_GE(cases.size(), 20u);
    int failures = 0;
    for (const auto& c : cases) {
        auto ids = tok_->encode(c.text);
        if (ids != c.ids) {
            ++failures;
            ADD_FAILURE() << "encode mismatch for text " << show(c.text) << "\n  got:      "
                          << ::testing::PrintToString(ids) << "\n  expected: " << ::testing::PrintToString(c.ids);
        }
        std::string d = tok_->decode(c.ids);
        if (d != c.decoded) {
            ++failures;
            ADD_FAILURE() << "decode mismatch for text " << show(c.text) << ": got " << show(d);
        }
        std::string ds = tok_->decode(c.ids, true);
        if (ds != c.decoded_skip) {
            ++failures;
            ADD_FAILURE() << "decode(skip_special) mismatch for text " << show(c.text) << ": got " << show(ds);
        }
    }
    std::cout << "[tokenizer] " << cases.size() << " HF cases, " << failures << " mismatches\n";
}

TEST_F(TokenizerQwen, ParseSpecialFalseTreatsSpecialsAsText) {
    auto ids = tok_->encode("<|im_start|>user", false);
    EXPECT_GT(ids.size(), 2u);
    for (int32_t id : ids) EXPECT_FALSE(tok_->is_special(id));
    EXPECT_EQ(tok_->decode(ids), "<|im_start|>user");
    EXPECT_EQ(tok_->encode("<|im_start|>user", true).front(), 151644);
}

TEST_F(TokenizerQwen, OutOfRangeIdsAreSkipped) {
    std::vector<int32_t> ids = tok_->encode("Hello");
    std::vector<int32_t> with_bad = {151900, ids[0], 999999, -1, 151666, INT32_MAX, INT32_MIN};
    EXPECT_EQ(tok_->decode(with_bad), "Hello");
    EXPECT_EQ(tok_->decode({151900, 999999, -1}), "");
    EXPECT_EQ(tok_->token_bytes(-1), "");
    EXPECT_EQ(tok_->token_bytes(999999), "");
    EXPECT_FALSE(tok_->is_special(-5));
    StreamDetokenizer st(*tok_);
    EXPECT_EQ(st.push(999999), "");
    EXPECT_EQ(st.push(-1), "");
    EXPECT_EQ(st.flush(), "");
}

TEST_F(TokenizerQwen, LossyUtf8UsesMaximalSubparts) {
    // Byte tokens: the byte-level char of each byte is a vocab token.
    auto byte_tok = [&](unsigned char b) {
        std::string s = std::string(1, char(b));
        for (int32_t id = 0; id < 512; ++id)
            if (tok_->token_bytes(id) == s) return id;
        return int32_t(-1);
    };
    auto dec = [&](std::vector<unsigned char> bytes) {
        std::vector<int32_t> ids;
        for (auto b : bytes) ids.push_back(byte_tok(b));
        return tok_->decode(ids);
    };
    const std::string R = "\xEF\xBF\xBD";
    EXPECT_EQ(dec({0xF0, 0x80, 0x80}), R + R + R);        // F0 80 is never valid
    EXPECT_EQ(dec({0xE2, 0x82, 'A'}), R + "A");            // truncated 3-byte sequence: one U+FFFD
    EXPECT_EQ(dec({0xED, 0xA0, 0x80}), R + R + R);        // surrogate
    EXPECT_EQ(dec({0xF4, 0x90, 0x80, 0x80}), R + R + R + R);  // above U+10FFFF
    EXPECT_EQ(dec({0xC0, 0xAF}), R + R);                  // overlong
    EXPECT_EQ(dec({'a', 0xF0, 0x9F, 0x98}), "a" + R);      // truncated at the end
    EXPECT_EQ(dec({0xE2, 0x82, 0xAC}), "\xE2\x82\xAC");   // the euro sign is fine
}

TEST_F(TokenizerQwen, InvalidUtf8InputDoesNotCrash) {
    std::string bad = "ab\xFF" "cd\xE2\x82" "ef\xC0";
    auto ids = tok_->encode(bad);
    EXPECT_EQ(ids, tok_->encode("ab\xEF\xBF\xBD" "cd\xEF\xBF\xBD" "ef\xEF\xBF\xBD"));
    EXPECT_EQ(tok_->decode(ids), "ab\xEF\xBF\xBD" "cd\xEF\xBF\xBD" "ef\xEF\xBF\xBD");
    std::string nul("a\0b", 3);
    EXPECT_EQ(tok_->decode(tok_->encode(nul)), nul);
}

TEST_F(TokenizerQwen, StreamNeverEmitsHalfACharacter) {
    const std::string text = "你好，世界！👍🏽 🎉🎉 👩\u200d👩\u200d👧 🇫🇷 naïve — ok <|im_end|>";
    auto ids = tok_->encode(text);
    ASSERT_FALSE(ids.empty());
    for (bool skip : {false, true}) {
        StreamDetokenizer st(*tok_, skip);
        std::string all;
        int held = 0;
        for (int32_t id : ids) {
            std::string piece = st.push(id);
            EXPECT_TRUE(valid_utf8(piece)) << "chunk " << show(piece);
            if (piece.empty()) ++held;
            all += piece;
        }
        std::string rest = st.flush();
        EXPECT_TRUE(valid_utf8(rest));
        all += rest;
        EXPECT_EQ(all, tok_->decode(ids, skip));
        EXPECT_GT(held, 0) << "this text should split some characters across tokens";
    }
}

TEST_F(TokenizerQwen, StreamReplacesBytesThatCanNeverBeValid) {
    // Cut an emoji's token sequence short, then continue with ASCII: the held bytes become one
    // U+FFFD as soon as they are known to be invalid.
    // A character the vocab has no single token for, so that its bytes span tokens.
    std::vector<int32_t> ids;
    for (const char* c : {"𓀀", "𝔘", "🦩", "ꙮ", "𐍈"}) {
        ids = tok_->encode(c);
        if (ids.size() >= 2) break;
    }
    ASSERT_GE(ids.size(), 2u);
    std::vector<int32_t> seq(ids.begin(), ids.end() - 1);
    seq.push_back(tok_->encode("A")[0]);
    StreamDetokenizer st(*tok_);
    std::string all;
    for (int32_t id : seq) {
        std::string piece = st.push(id);
        EXPECT_TRUE(valid_utf8(piece));
        all += piece;
    }
    EXPECT_EQ(all, "\xEF\xBF\xBD" "A");
    EXPECT_EQ(st.flush(), "");
    EXPECT_EQ(all, tok_->decode(seq));
    // A truncated sequence at the end comes out of flush().
    StreamDetokenizer st2(*tok_);
    std::string out2;
    for (size_t i = 0; i + 1 < ids.size(); ++i) out2 += st2.push(ids[i]);
    EXPECT_EQ(out2, "");
    EXPECT_EQ(st2.flush(), "\xEF\xBF\xBD");
}

TEST_F(TokenizerQwen, LongRunsEncode) {
    for (const std::string& unit : {std::string(" "), std::string("="), std::string("a"), std::string("\n"),
                                    std::string("é"), std::string("12")}) {
        std::string s;
        while (s.size() < 100000) s += unit;
        auto t0 = std::chrono::steady_clock::now();
        auto ids = tok_->encode(s);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_EQ(tok_->decode(ids), s) << "unit " << show(unit);
        EXPECT_LT(ms, 5000.0) << "unit " << show(unit);
    }
}

TEST_F(TokenizerQwen, Encode100KBMixedText) {
    auto cases = load_cases();
    std::string text;
    while (text.size() < 100 * 1024)
        for (const auto& c : cases)
            if (c.decoded == c.text) text += c.text + "\n";  // NFC-stable texts only
    auto t0 = std::chrono::steady_clock::now();
    auto ids = tok_->encode(text);
    auto t1 = std::chrono::steady_clock::now();
    std::string back = tok_->decode(ids);
    auto t2 = std::chrono::steady_clock::now();
    double enc_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    double dec_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    std::cout << "[tokenizer] encode " << text.size() << " bytes -> " << ids.size() << " tokens in " << enc_ms
              << " ms; decode in " << dec_ms << " ms\n";
    EXPECT_EQ(back, text);
    EXPECT_LT(enc_ms, 5000.0);
    // A second run hits the word cache; the result must not change.
    EXPECT_EQ(tok_->encode(text), ids);
}

TEST_F(TokenizerQwen, Encode100KBOfMostlyUniqueWords) {
    // Pseudo-random words over Latin, Cyrillic, CJK, digits and punctuation: few repeats, so
    // this times the BPE itself rather than the word cache.
    const std::vector<std::string> alphabet = {"a", "e", "i", "o", "u", "k", "s", "t", "r", "n", "l", "m",
                                               "д", "ж", "ы", "я", "中", "文", "字", "词", "7", "3", ".",
                                               ",", "-", "'"};
    uint64_t state = 12345;
    auto next = [&](uint64_t m) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return (state >> 33) % m;
    };
    std::string text;
    while (text.size() < 100 * 1024) {
        size_t len = 2 + next(9);
        for (size_t i = 0; i < len; ++i) text += alphabet[next(alphabet.size())];
        text += next(10) == 0 ? "\n" : " ";
    }
    auto t0 = std::chrono::steady_clock::now();
    auto ids = tok_->encode(text);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "[tokenizer] encode " << text.size() << " bytes of mostly unique words -> " << ids.size()
              << " tokens in " << ms << " ms\n";
    EXPECT_EQ(tok_->decode(ids), text);
    EXPECT_LT(ms, 5000.0);
}

TEST_F(TokenizerQwen, ConcurrentEncodesAgree) {
    auto cases = load_cases();
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int rep = 0; rep < 20; ++rep)
                for (size_t i = size_t(t); i < cases.size(); ++i)
                    if (tok_->encode(cases[i].text) != cases[i].ids) ++bad;
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
}

// ---------------------------------------------------------------------------------------------

TEST(TokenizerTiny, LoadsSpecials) {
    Tokenizer tok = Tokenizer::from_file(kTinyJson);
    EXPECT_EQ(tok.token_id("<|endoftext|>"), 380);
    EXPECT_EQ(tok.token_id("<|im_start|>"), 381);
    EXPECT_EQ(tok.token_id("<|im_end|>"), 382);
    EXPECT_EQ(tok.token_id("|<MASK>|"), 383);
    EXPECT_EQ(tok.size(), 384);
    for (int32_t id = 380; id < 384; ++id) EXPECT_TRUE(tok.is_special(id)) << id;
    EXPECT_FALSE(tok.is_special(100));
}

TEST(TokenizerTiny, ChatMLRoundTrips) {
    Tokenizer tok = Tokenizer::from_model_dir(kFixtures + "/tiny/model");
    const std::string s =
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "What's 2+2? Answer in 日本語, please 🙂|<MASK>||<MASK>|<|im_end|>\n<|im_start|>assistant\n";
    auto ids = tok.encode(s);
    EXPECT_EQ(tok.decode(ids), s);
    EXPECT_EQ(ids.front(), 381);
    int specials = 0;
    for (int32_t id : ids) specials += tok.is_special(id);
    EXPECT_EQ(specials, 7);
    EXPECT_EQ(tok.decode(ids, true).find("<|im_start|>"), std::string::npos);
}

TEST(TokenizerTiny, MovedTokenizerStillWorks) {
    Tokenizer a = Tokenizer::from_file(kTinyJson);
    Tokenizer b = std::move(a);
    EXPECT_EQ(b.decode(b.encode("hello world")), "hello world");
    Tokenizer c;
    c = std::move(b);
    EXPECT_EQ(c.token_id("|<MASK>|"), 383);
}

// ---------------------------------------------------------------------------------------------

namespace {

// Writes dir/tokenizer.json: the tiny tokenizer without its mask token.
void write_tiny_without_mask(const fs::path& dir) {
    json j = json::parse(slurp(kTinyJson));
    json kept = json::array();
    for (const auto& t : j["added_tokens"])
        if (t["content"] != "|<MASK>|") kept.push_back(t);
    j["added_tokens"] = kept;
    write_file(dir / "tokenizer.json", j.dump());
}

}  // namespace

TEST(TokenizerModelDir, WithoutSideFilesHasNoMask) {
    TempDir d;
    write_tiny_without_mask(d.path);
    Tokenizer tok = Tokenizer::from_model_dir(d.path.string());
    EXPECT_EQ(tok.token_id("|<MASK>|"), -1);
    EXPECT_EQ(tok.size(), 383);
}

TEST(TokenizerModelDir, MaskFromAddedTokensJson) {
    TempDir d;
    write_tiny_without_mask(d.path);
    write_file(d.path / "added_tokens.json", R"({"<|endoftext|>": 380, "|<MASK>|": 383})");
    Tokenizer tok = Tokenizer::from_model_dir(d.path.string());
    EXPECT_EQ(tok.token_id("|<MASK>|"), 383);
    EXPECT_TRUE(tok.is_special(383));
    EXPECT_EQ(tok.size(), 384);
    auto ids = tok.encode("a|<MASK>|b");
    EXPECT_NE(std::find(ids.begin(), ids.end(), 383), ids.end());
    EXPECT_EQ(tok.decode(ids), "a|<MASK>|b");
    EXPECT_EQ(tok.decode(ids, true), "ab");
}

TEST(TokenizerModelDir, MaskFromTokenizerConfig) {
    TempDir d;
    write_tiny_without_mask(d.path);
    write_file(d.path / "tokenizer_config.json", R"({
      "added_tokens_decoder": {
        "380": {"content": "<|endoftext|>", "lstrip": false, "normalized": false, "rstrip": false,
                "single_word": false, "special": true},
        "383": {"content": "|<MASK>|", "lstrip": false, "normalized": false, "rstrip": false,
                "single_word": false, "special": true},
        "384": {"content": "<think>", "special": false, "normalized": false}
      },
      "model_max_length": 32768
    })");
    Tokenizer tok = Tokenizer::from_model_dir(d.path.string());
    EXPECT_EQ(tok.token_id("|<MASK>|"), 383);
    EXPECT_TRUE(tok.is_special(383));
    EXPECT_EQ(tok.token_id("<think>"), 384);
    EXPECT_FALSE(tok.is_special(384));
    EXPECT_EQ(tok.size(), 385);
    auto ids = tok.encode("<think>x|<MASK>|");
    ASSERT_GE(ids.size(), 3u);
    EXPECT_EQ(ids.front(), 384);
    EXPECT_EQ(ids.back(), 383);
    EXPECT_EQ(tok.decode(ids, true), "<think>x");
}

TEST(TokenizerModelDir, ConflictingIdIsAnError) {
    TempDir d;
    write_tiny_without_mask(d.path);
    write_file(d.path / "added_tokens.json", R"({"|<MASK>|": 381})");
    try {
        Tokenizer::from_model_dir(d.path.string());
        FAIL() << "expected fdl::Error";
    } catch (const fdl::Error& e) {
        EXPECT_NE(std::string(e.what()).find("added_tokens.json"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------------------------------------

namespace {

// Expects from_file(path) to throw fdl::Error whose one-line message names the file.
void expect_error(const std::string& path, const std::string& also = "") {
    try {
        Tokenizer::from_file(path);
        ADD_FAILURE() << "expected fdl::Error for " << path;
    } catch (const fdl::Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(fs::path(path).filename().string()), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        if (!also.empty()) {
            EXPECT_NE(msg.find(also), std::string::npos) << msg;
        }
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type for " << path << ": " << e.what();
    }
}

}  // namespace

TEST(TokenizerErrors, MissingFile) { expect_error("/nonexistent/dir/tokenizer.json"); }

TEST(TokenizerErrors, MissingModelDir) {
    EXPECT_THROW(Tokenizer::from_model_dir("/nonexistent/model/dir"), fdl::Error);
}

TEST(TokenizerErrors, Directory) {
    TempDir d;
    expect_error(d.path.string());
}

TEST(TokenizerErrors, InvalidJson) {
    TempDir d;
    write_file(d.path / "tokenizer.json", "{\"model\": {\"type\": \"BPE\",\n  oops");
    expect_error((d.path / "tokenizer.json").string(), "JSON");
    write_file(d.path / "empty.json", "");
    expect_error((d.path / "empty.json").string());
}

TEST(TokenizerErrors, MissingModel) {
    TempDir d;
    json j = json::parse(slurp(kTinyJson));
    j.erase("model");
    write_file(d.path / "tokenizer.json", j.dump());
    expect_error((d.path / "tokenizer.json").string(), "model");
}

TEST(TokenizerErrors, BadRegex) {
    TempDir d;
    json j = json::parse(slurp(kTinyJson));
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed[";
    write_file(d.path / "tokenizer.json", j.dump());
    expect_error((d.path / "tokenizer.json").string(), "regex");
}

TEST(TokenizerErrors, MalformedContentNeverCrashes) {
    TempDir d;
    const json base = json::parse(slurp(kTinyJson));
    std::vector<std::pair<std::string, std::function<void(json&)>>> edits = {
        {"top level array", [](json& j) { j = json::array({1, 2}); }},
        {"model is a string", [](json& j) { j["model"] = "BPE"; }},
        {"unsupported model type", [](json& j) { j["model"]["type"] = "WordPiece"; }},
        {"model type is a number", [](json& j) { j["model"]["type"] = 7; }},
        {"vocab is a list", [](json& j) { j["model"]["vocab"] = json::array(); }},
        {"vocab id is a string", [](json& j) { j["model"]["vocab"]["a"] = "x"; }},
        {"vocab id negative", [](json& j) { j["model"]["vocab"]["a"] = -3; }},
        {"vocab id huge", [](json& j) { j["model"]["vocab"]["a"] = 1e15; }},
        {"vocab id huge int", [](json& j) { j["model"]["vocab"]["a"] = 4000000000LL; }},
        {"merges missing", [](json& j) { j["model"].erase("merges"); }},
        {"merges is an object", [](json& j) { j["model"]["merges"] = json::object(); }},
        {"merge is a number", [](json& j) { j["model"]["merges"][0] = 5; }},
        {"merge without space", [](json& j) { j["model"]["merges"][0] = "ab"; }},
        {"merge of unknown tokens", [](json& j) { j["model"]["merges"][0] = json::array({"zzzq", "qqqz"}); }},
        {"merge pair of three", [](json& j) { j["model"]["merges"][0] = json::array({"a", "b", "c"}); }},
        {"normalizer unknown", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }},
        {"normalizer not an object", [](json& j) { j["normalizer"] = 3; }},
        {"pre_tokenizer missing", [](json& j) { j.erase("pre_tokenizer"); }},
        {"pre_tokenizer list is a string", [](json& j) { j["pre_tokenizer"]["pretokenizers"] = "x"; }},
        {"pattern not a string", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = 1; }},
        {"pattern empty object", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = json::object(); }},
        {"behavior unknown", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Bogus"; }},
        {"decoder unknown", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }},
        {"added_tokens is an object", [](json& j) { j["added_tokens"] = json::object(); }},
        {"added token id missing", [](json& j) { j["added_tokens"][0].erase("id"); }},
        {"added token content number", [](json& j) { j["added_tokens"][0]["content"] = 5; }},
        {"added token flag string", [](json& j) { j["added_tokens"][0]["special"] = "yes"; }},
        {"added token is a string", [](json& j) { j["added_tokens"][0] = "x"; }},
    };
    for (auto& [name, edit] : edits) {
        json j = base;
        edit(j);
        const fs::path p = d.path / "tokenizer.json";
        write_file(p, j.dump());
        try {
            Tokenizer::from_file(p.string());
            ADD_FAILURE() << name << ": expected fdl::Error";
        } catch (const fdl::Error& e) {
            EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << name << ": " << e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << name << ": wrong exception type: " << e.what();
        }
    }
}

TEST(TokenizerErrors, BadSideFilesInModelDir) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"added_tokens.json", "[1, 2]"},
        {"added_tokens.json", "{\"x\": \"y\"}"},
        {"added_tokens.json", "{\"x\": "},
        {"tokenizer_config.json", "{\"added_tokens_decoder\": []}"},
        {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"abc\": {\"content\": \"x\"}}}"},
        {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"400\": {\"special\": true}}}"},
        {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"400\": \"x\"}}"},
        {"tokenizer_config.json", "{\"added_tokens_decoder\": {\"400\": {\"content\": \"x\", \"special\": 1}}}"},
    };
    for (const auto& [file, text] : bad) {
        TempDir d;
        write_tiny_without_mask(d.path);
        write_file(d.path / file, text);
        try {
            Tokenizer::from_model_dir(d.path.string());
            ADD_FAILURE() << file << " " << text << ": expected fdl::Error";
        } catch (const fdl::Error& e) {
            EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << file << ": wrong exception type: " << e.what();
        }
    }
}

// ---------------------------------------------------------------------------------------------

TEST(TokenizerVariants, BareByteLevelWithGpt2RegexAndStringMerges) {
    // The tiny tokenizer rewritten the GPT-2 way: ByteLevel(use_regex=true) alone, merges as
    // "a b" strings, no normalizer.
    TempDir d;
    json j = json::parse(slurp(kTinyJson));
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                          {"use_regex", true}};
    j["normalizer"] = nullptr;
    json merges = json::array();
    for (const auto& m : j["model"]["merges"])
        merges.push_back(m.is_array() ? json(m[0].get<std::string>() + " " + m[1].get<std::string>()) : m);
    j["model"]["merges"] = merges;
    write_file(d.path / "tokenizer.json", j.dump());
    Tokenizer gpt2 = Tokenizer::from_file((d.path / "tokenizer.json").string());
    Tokenizer qwen = Tokenizer::from_file(kTinyJson);
    const std::string s = "Hello world, it's 2024! <|im_end|>";
    EXPECT_EQ(gpt2.decode(gpt2.encode(s)), s);
    // Same words either way where the two patterns cut the same: " world" is one word in both.
    auto a = gpt2.encode(" world");
    auto b = qwen.encode(" world");
    EXPECT_EQ(a, b);
    // They differ on punctuation before a newline: Qwen keeps ".\n" in one word (and the tiny
    // vocab merges it), GPT-2 cuts it in two.
    EXPECT_EQ(qwen.encode("end.\n").size() + 1, gpt2.encode("end.\n").size());
    EXPECT_EQ(gpt2.decode(gpt2.encode("end.\n")), "end.\n");
}

TEST(TokenizerVariants, AddedTokenStripFlags) {
    TempDir d;
    json j = json::parse(slurp(kTinyJson));
    j["added_tokens"].push_back({{"id", 384}, {"content", "<sep>"}, {"special", true}, {"lstrip", true},
                                 {"rstrip", true}, {"normalized", false}, {"single_word", false}});
    j["added_tokens"].push_back({{"id", 385}, {"content", "cat"}, {"special", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", true}, {"single_word", true}});
    write_file(d.path / "tokenizer.json", j.dump());
    Tokenizer tok = Tokenizer::from_file((d.path / "tokenizer.json").string());
    Tokenizer plain = Tokenizer::from_file(kTinyJson);
    // lstrip/rstrip: the spaces around <sep> are swallowed by it.
    auto ids = tok.encode("a  <sep>  b");
    std::vector<int32_t> expect = plain.encode("a");
    expect.push_back(384);
    for (int32_t id : plain.encode("b")) expect.push_back(id);
    EXPECT_EQ(ids, expect);
    // single_word: "cat" only matches as a whole word.
    auto w = tok.encode("a cat here");
    EXPECT_NE(std::find(w.begin(), w.end(), 385), w.end());
    auto x = tok.encode("concatenate");
    EXPECT_EQ(std::find(x.begin(), x.end(), 385), x.end());
    EXPECT_EQ(tok.decode(x), "concatenate");
}

TEST(TokenizerVariants, AddedTokensGoThroughTheByteLevelDecoderLikeHF) {
    // HF runs the ByteLevel decoder on added tokens as well: a token whose chars all belong to
    // the byte alphabet is mapped back to bytes ("Ġx" -> " x"); one with any other char (here
    // a space) is kept as it is.
    TempDir d;
    json j = json::parse(slurp(kTinyJson));
    j["added_tokens"].push_back({{"id", 384}, {"content", "Ġx"}, {"special", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"single_word", false}});
    j["added_tokens"].push_back({{"id", 385}, {"content", "a b"}, {"special", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"single_word", false}});
    write_file(d.path / "tokenizer.json", j.dump());
    Tokenizer tok = Tokenizer::from_file((d.path / "tokenizer.json").string());
    EXPECT_EQ(tok.token_bytes(384), " x");
    EXPECT_EQ(tok.token_bytes(385), "a b");
    EXPECT_EQ(tok.encode("Ġx"), std::vector<int32_t>{384});
    EXPECT_EQ(tok.decode({384, 385}), " xa b");
    EXPECT_EQ(tok.token_id("Ġx"), 384);
}
