// A conversation in ChatML and the model state behind it. Each message keeps the token ids the
// model saw (an assistant turn keeps exactly the ids it generated), so the prompt of a new turn
// starts with the previous turn's tokens and the decoder reuses their cached K/V: a new turn
// prefills only what is new.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/decode/generate.h"
#include "engine/model/model.h"

namespace fdl {

struct ChatMessage {
    std::string role;     // system | user | assistant
    std::string content;
    std::vector<int32_t> ids;  // content tokens (filled lazily for text messages)
};

// Qwen2.5's template adds this system prompt when a conversation has none.
extern const char* const kQwenDefaultSystem;

// The default system prompt a model's chat template implies ("" for none): Qwen2.5 models
// (their tokenizer_config.json chat_template names it) get kQwenDefaultSystem.
std::string default_system_prompt(const std::string& model_dir);

// ChatML text of a conversation, optionally ending with the assistant generation prompt.
std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// A conversation's messages and system prompt, with the token ids each message had.
struct Conversation {
    std::string system;
    std::vector<ChatMessage> messages;
};

class ChatSession {
public:
    explicit ChatSession(Model& model);

    // The system prompt ("" = none, unless the model has a default one).
    void set_system(const std::string& text);
    const std::string& system() const { return system_; }
    const std::vector<ChatMessage>& messages() const { return messages_; }
    // The whole conversation, token ids included (a swap keeps the cache's reuse exact).
    Conversation conversation() const { return {system_, messages_}; }
    void set_conversation(Conversation c) {
        system_ = std::move(c.system);
        messages_ = std::move(c.messages);
    }
    void clear();  // forget the conversation (the cache is kept; it is reused only where it matches)
    // How many earlier exchanges (user + assistant) the prompt of a new turn keeps; -1 = all
    // (the default, unless the model's config.json says otherwise). The transcript keeps them all.
    void set_history_turns(int n) { history_turns_ = n < 0 ? -1 : n; }
    int history_turns() const { return history_turns_; }

    // Adds a user turn, generates the reply, and adds it (cut at the stop token). A cancelled
    // reply is kept as far as it got, so the transcript shows what was decoded.
    GenerateResult reply(const std::string& user_text, const GenerateOptions& opts, const EventCallback& on_event = nullptr,
                         const std::atomic<bool>* cancel = nullptr);

    // The token ids of the conversation (the system prompt, the kept history, the last message),
    // ending with the generation prompt. When that is longer than max_tokens, the oldest history
    // messages are left out until it fits (the new message and the system prompt always stay;
    // kept history starts at a user message); left_out_for_context() says how many.
    std::vector<int32_t> prompt_ids(int64_t max_tokens = INT64_MAX);
    // The prompt a reply to `user_text` would run (the conversation is left unchanged).
    std::vector<int32_t> prompt_with(const std::string& user_text, int64_t max_tokens = INT64_MAX);
    int left_out_for_context() const { return left_out_; }

    Model& model() { return model_; }
    KVCache& cache() { return cache_; }

    // Save / load: {"system": ..., "messages": [{"role", "content"}]}.
    nlohmann::json to_json() const;
    void from_json(const nlohmann::json& j);  // throws fdl::Error on a malformed document

private:
    Model& model_;
    KVCache cache_;
    std::string system_;
    std::vector<ChatMessage> messages_;
    int history_turns_ = -1;
    int left_out_ = 0;  // history messages the last prompt_ids() left out to fit
    const std::vector<int32_t>& ids_of(ChatMessage& m);
};

}  // namespace fdl
