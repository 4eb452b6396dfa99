// Chat template and multi-turn sessions: a new turn reuses the cached K/V of the conversation
// and gives exactly what a fresh run over the whole conversation gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/chat_session.h"
#include "engine/error.h"
#include "engine/model_config.h"

using namespace fdl;

TEST(ChatTemplate, RendersChatML) {
    std::vector<ChatMessage> m = {{"system", "Be brief.", {}}, {"user", "Hi", {}}, {"assistant", "Hello!", {}}, {"user", "2+2?", {}}};
    EXPECT_EQ(render_chatml(m, true),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
              "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, QwenDefaultSystemPrompt) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_tmpl_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "tokenizer_config.json")
        << nlohmann::json{{"chat_template", std::string("{%- if not system %}") + kQwenDefaultSystem + "{% endif %}"}}.dump();
    EXPECT_EQ(default_system_prompt(dir.string()), kQwenDefaultSystem);
    std::ofstream(dir / "tokenizer_config.json") << "{\"chat_template\": \"plain\"}";
    EXPECT_EQ(default_system_prompt(dir.string()), "");
    fs::remove_all(dir);
}

class ChatSessionTest : public ::testing::TestWithParam<std::tuple<DecodeMode, CacheMode>> {};

TEST_P(ChatSessionTest, SecondTurnReusesCacheExactly) {
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    GenerateOptions o;
    o.mode = std::get<0>(GetParam());
    o.cache = std::get<1>(GetParam());
    o.max_new_tokens = 64;
    o.stop_tokens = {382};
    ChatSession s(*model);
    s.set_system("You are terse.");
    GenerateResult r1 = s.reply("Hello there", o);
    ASSERT_EQ(s.messages().size(), 2u);
    // The assistant turn keeps exactly the generated ids (minus the stop token).
    std::vector<int32_t> ids = r1.tokens;
    if (!ids.empty() && ids.back() == 382) ids.pop_back();
    EXPECT_EQ(s.messages()[1].ids, ids);

    const std::vector<int32_t> p2 = s.prompt_with("And again, please");
    GenerateResult r2 = s.reply("And again, please", o);
    EXPECT_GT(r2.stats.reused_tokens, 0);
    EXPECT_EQ(r2.stats.reused_tokens + r2.stats.prefilled_tokens, o.mode == DecodeMode::AR ? int(p2.size()) : int(p2.size()) / 32 * 32);

    // A fresh run over the same conversation from an empty cache gives the same answer.
    KVCache cache = model->make_cache();
    GenerateResult fresh = generate(*model, cache, p2, o);
    EXPECT_EQ(fresh.stats.reused_tokens, 0);
    EXPECT_EQ(r2.tokens, fresh.tokens);

    // Save and load keep the conversation.
    ChatSession loaded(*model);
    loaded.from_json(s.to_json());
    ASSERT_EQ(loaded.messages().size(), 4u);
    EXPECT_EQ(loaded.messages()[2].content, "And again, please");
    EXPECT_EQ(loaded.system(), "You are terse.");
}

// --history / config.json "fastdllm_chat": the prompt keeps the last N exchanges (the system
// prompt always), and is exactly what a session holding only those exchanges would render.
TEST(ChatSessionHistory, KeepsTheLastExchanges) {
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ASSERT_EQ(model->config().chat_history_turns, -1);  // no "fastdllm_chat" in its config: all
    ChatSession s(*model);
    s.set_system("S");
    nlohmann::json doc = {{"system", "S"},
                          {"messages", {{{"role", "user"}, {"content", "one"}}, {{"role", "assistant"}, {"content", "1"}},
                                        {{"role", "user"}, {"content", "two"}}, {{"role", "assistant"}, {"content", "2"}}}}};
    s.from_json(doc);
    auto render = [&](const std::vector<std::pair<std::string, std::string>>& turns) {
        ChatSession ref(*model);
        nlohmann::json d = {{"system", "S"}, {"messages", nlohmann::json::array()}};
        for (const auto& t : turns) d["messages"].push_back({{"role", t.first}, {"content", t.second}});
        ref.from_json(d);
        return ref.prompt_with("three");
    };
    EXPECT_EQ(s.history_turns(), -1);
    EXPECT_EQ(s.prompt_with("three"), render({{"user", "one"}, {"assistant", "1"}, {"user", "two"}, {"assistant", "2"}}));
    s.set_history_turns(1);
    EXPECT_EQ(s.prompt_with("three"), render({{"user", "two"}, {"assistant", "2"}}));
    s.set_history_turns(0);
    EXPECT_EQ(s.prompt_with("three"), render({}));
    s.set_history_turns(5);  // more than there are: all
    EXPECT_EQ(s.prompt_with("three"), render({{"user", "one"}, {"assistant", "1"}, {"user", "two"}, {"assistant", "2"}}));
    EXPECT_EQ(s.messages().size(), 4u);  // the transcript keeps everything

    // The shipped demo models declare 0 in their config.json; a malformed declaration is refused.
    EXPECT_EQ(ModelConfig::from_dir(SOURCE_DIR "/assets/models/demo-dllm").chat_history_turns, 0);
    EXPECT_EQ(ModelConfig::from_dir(SOURCE_DIR "/assets/models/demo-ar").chat_history_turns, 0);
    EXPECT_THROW(ModelConfig::parse(R"({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 8, "vocab_size": 10, "fastdllm_chat": {"history_turns": -3}})", "config.json"), Error);
    EXPECT_THROW(ModelConfig::parse(R"({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 8, "vocab_size": 10, "fastdllm_chat": 2})", "config.json"), Error);
}

TEST(ChatSessionJson, RejectsMalformedDocuments) {
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ChatSession s(*model);
    for (const char* doc : {"[]", "{}", "{\"messages\": 3}", "{\"messages\": [{\"role\": \"user\"}]}",
                            "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
                            "{\"messages\": [], \"system\": 5}"}) {
        EXPECT_THROW(s.from_json(nlohmann::json::parse(doc)), Error) << doc;
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, ChatSessionTest,
                         ::testing::Values(std::make_tuple(DecodeMode::AR, CacheMode::Prefix),
                                           std::make_tuple(DecodeMode::Diffusion, CacheMode::Prefix),
                                           std::make_tuple(DecodeMode::Diffusion, CacheMode::Dual)));
