// Chat template and multi-turn sessions: a new turn reuses the cached K/V of the conversation
// and gives exactly what a fresh run over the whole conversation gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "engine/model/model_config.h"

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

// A conversation longer than the context: the oldest history is left out until the prompt fits
// (the system prompt and the new message stay), and a reply then runs instead of failing.
TEST(ChatSessionHistory, LeavesOutTheOldestHistoryToFitTheContext) {
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ChatSession s(*model);
    s.set_system("S");
    nlohmann::json doc = {{"system", "S"}, {"messages", nlohmann::json::array()}};
    for (int i = 0; i < 6; i++) {
        doc["messages"].push_back({{"role", "user"}, {"content", "question number " + std::to_string(i)}});
        doc["messages"].push_back({{"role", "assistant"}, {"content", "answer " + std::to_string(i)}});
    }
    s.from_json(doc);
    auto render = [&](int from_exchange) {
        ChatSession ref(*model);
        nlohmann::json d = {{"system", "S"}, {"messages", nlohmann::json::array()}};
        for (size_t i = size_t(2 * from_exchange); i < doc["messages"].size(); i++) d["messages"].push_back(doc["messages"][i]);
        ref.from_json(d);
        return ref.prompt_with("new");
    };
    const auto all = s.prompt_with("new");
    EXPECT_EQ(s.left_out_for_context(), 0);
    EXPECT_EQ(s.prompt_with("new", int64_t(all.size())), all);
    EXPECT_EQ(s.left_out_for_context(), 0);
    // One token short: the first exchange (question and answer) goes.
    EXPECT_EQ(s.prompt_with("new", int64_t(all.size()) - 1), render(1));
    EXPECT_EQ(s.left_out_for_context(), 2);
    // Room for the last two exchanges only.
    const auto two = render(4);
    EXPECT_EQ(s.prompt_with("new", int64_t(two.size())), two);
    EXPECT_EQ(s.left_out_for_context(), 8);
    // No room even without history: the system prompt and the new message stay (generate refuses it).
    const auto none = render(6);
    EXPECT_EQ(s.prompt_with("new", 1), none);
    EXPECT_EQ(s.left_out_for_context(), 12);
    EXPECT_EQ(s.messages().size(), 12u);  // the transcript keeps everything

    // A reply fits its prompt to the context less the new tokens and two blocks (so many new
    // tokens asked for that the budget is 50 above the conversation so far; the reply is cancelled
    // after its first token: what is tested is that it runs).
    GenerateOptions opts;
    opts.mode = DecodeMode::AR;
    opts.block_size = 4;
    opts.max_new_tokens = model->config().max_position_embeddings - 2 * opts.block_size - int(all.size()) - 50;
    const int64_t budget = max_prompt_tokens(model->config(), opts);
    ASSERT_EQ(budget, int64_t(all.size()) + 50);
    std::string filler;
    for (int i = 0; i < 40; i++) filler += "more words ";
    doc["messages"].push_back({{"role", "user"}, {"content", filler}});
    doc["messages"].push_back({{"role", "assistant"}, {"content", filler}});
    s.from_json(doc);
    ASSERT_GT(int64_t(s.prompt_with("new").size()), budget);
    std::atomic<bool> stop{true};
    const GenerateResult r = s.reply("new", opts, nullptr, &stop);
    EXPECT_GT(s.left_out_for_context(), 0);
    EXPECT_EQ(r.tokens.size(), 1u);
    EXPECT_LE(r.stats.prompt_tokens, budget);
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
