#include "engine/chat/chat_session.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/io/error.h"
#include "engine/io/files.h"

namespace fdl {

using json = nlohmann::json;

const char* const kQwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

std::string default_system_prompt(const std::string& model_dir) {
    const std::string path = model_dir + "/tokenizer_config.json";
    if (!file_exists(path)) return "";
    std::string text;
    try {
        text = read_file(path);
    } catch (const Error&) {
        return "";
    }
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string()) return "";
    return j["chat_template"].get<std::string>().find(kQwenDefaultSystem) != std::string::npos ? kQwenDefaultSystem : "";
}

std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string s;
    for (auto& m : messages) s += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) s += "<|im_start|>assistant\n";
    return s;
}

ChatSession::ChatSession(Model& model) : model_(model), cache_(model.make_cache()) {
    system_ = default_system_prompt(model.config().dir);
    history_turns_ = model.config().chat_history_turns;
}

void ChatSession::set_system(const std::string& text) { system_ = text; }

void ChatSession::clear() { messages_.clear(); }

const std::vector<int32_t>& ChatSession::ids_of(ChatMessage& m) {
    if (m.ids.empty() && !m.content.empty()) m.ids = model_.tokenizer().encode(m.content, false);
    return m.ids;
}

std::vector<int32_t> ChatSession::prompt_ids(int64_t max_tokens) {
    const Tokenizer& tok = model_.tokenizer();
    const int32_t start = tok.token_id("<|im_start|>"), end = tok.token_id("<|im_end|>");
    if (start < 0 || end < 0) throw Error(model_.config().name + ": the tokenizer has no ChatML tokens (<|im_start|>, <|im_end|>)");
    const std::vector<int32_t> nl = tok.encode("\n", false);
    auto turn = [&](std::vector<int32_t>& out, const std::string& role, const std::vector<int32_t>& content) {
        out.push_back(start);
        for (int32_t t : tok.encode(role + "\n", false)) out.push_back(t);
        out.insert(out.end(), content.begin(), content.end());
        out.push_back(end);
        out.insert(out.end(), nl.begin(), nl.end());
    };
    std::vector<int32_t> head, tail;  // the system turn; the generation prompt
    if (!system_.empty()) turn(head, "system", tok.encode(system_, false));
    tail.push_back(start);
    for (int32_t t : tok.encode("assistant\n", false)) tail.push_back(t);
    // The last message (the new user turn) and the history_turns_ exchanges before it.
    size_t first = 0;
    if (history_turns_ >= 0 && messages_.size() > 2 * size_t(history_turns_) + 1)
        first = messages_.size() - 2 * size_t(history_turns_) - 1;
    std::vector<std::vector<int32_t>> turns(messages_.size());
    int64_t total = int64_t(head.size() + tail.size());
    for (size_t i = first; i < messages_.size(); i++) {
        turn(turns[i], messages_[i].role, ids_of(messages_[i]));
        total += int64_t(turns[i].size());
    }
    // Too long for the context: leave out the oldest history, never the last message, and do
    // not start the kept history with an assistant reply.
    const size_t kept_from = first;
    const size_t last = messages_.empty() ? 0 : messages_.size() - 1;
    while (first < last && total > max_tokens) total -= int64_t(turns[first++].size());
    if (first > kept_from)
        while (first < last && messages_[first].role == "assistant") total -= int64_t(turns[first++].size());
    left_out_ = int(first - kept_from);
    std::vector<int32_t> out = head;
    for (size_t i = first; i < messages_.size(); i++) out.insert(out.end(), turns[i].begin(), turns[i].end());
    out.insert(out.end(), tail.begin(), tail.end());
    return out;
}

std::vector<int32_t> ChatSession::prompt_with(const std::string& user_text, int64_t max_tokens) {
    messages_.push_back({"user", user_text, {}});
    std::vector<int32_t> p;
    try {
        p = prompt_ids(max_tokens);
    } catch (...) {
        messages_.pop_back();
        throw;
    }
    messages_.pop_back();
    return p;
}

GenerateResult ChatSession::reply(const std::string& user_text, const GenerateOptions& opts, const EventCallback& on_event,
                                  const std::atomic<bool>* cancel) {
    messages_.push_back({"user", user_text, {}});
    std::vector<int32_t> prompt;
    try {
        prompt = prompt_ids(max_prompt_tokens(model_.config(), opts));
    } catch (...) {
        messages_.pop_back();
        throw;
    }
    GenerateResult r;
    try {
        r = generate(model_, cache_, prompt, opts, on_event, cancel);
    } catch (...) {
        messages_.pop_back();
        throw;
    }
    ChatMessage a{"assistant", "", r.tokens};
    const auto& stops = opts.stop_tokens.empty() ? model_.config().eos_token_ids : opts.stop_tokens;
    if (!a.ids.empty() && std::find(stops.begin(), stops.end(), a.ids.back()) != stops.end()) a.ids.pop_back();
    a.content = model_.tokenizer().decode(a.ids, true);
    messages_.push_back(std::move(a));
    return r;
}

// Typed text may hold any bytes (the model reads invalid UTF-8 as U+FFFD), but a JSON string
// must be valid UTF-8 or dump() throws and the session could not be saved: invalid bytes become
// U+FFFD here too.
static json text_value(const std::string& s) {
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

json ChatSession::to_json() const {
    json msgs = json::array();
    for (auto& m : messages_) msgs.push_back({{"role", m.role}, {"content", text_value(m.content)}});
    return {{"format", "fastdllm-chat-1"}, {"system", text_value(system_)}, {"messages", msgs}};
}

void ChatSession::from_json(const json& j) {
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
        throw Error("not a fastdllm chat session (needs a \"messages\" list)");
    std::vector<ChatMessage> msgs;
    for (auto& m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
            !m["content"].is_string())
            throw Error("each message needs a \"role\" and a \"content\" string");
        const std::string role = m["role"];
        if (role != "user" && role != "assistant" && role != "system")
            throw Error("unknown message role \"" + role + "\"");
        msgs.push_back({role, m["content"], {}});
    }
    std::string sys = system_;
    if (j.contains("system")) {
        if (!j["system"].is_string()) throw Error("\"system\" must be a string");
        sys = j["system"];
    }
    messages_ = std::move(msgs);
    system_ = sys;
}

}  // namespace fdl
