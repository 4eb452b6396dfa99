#include "client/remote_chat.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/io/clock.h"
#include "engine/io/error.h"
#include "engine/io/files.h"

namespace fdl::client {

using json = nlohmann::json;

namespace {

// The names the server's request fields take (as engine/decode names them; this library does not
// link the decoders).
const char* mode_field(DecodeMode m) { return m == DecodeMode::AR ? "ar" : "diffusion"; }
const char* cache_field(CacheMode m) {
    switch (m) {
        case CacheMode::None: return "none";
        case CacheMode::Prefix: return "prefix";
        case CacheMode::Dual: return "dual";
        case CacheMode::DualOverlap: return "dual-overlap";
    }
    return "dual";
}
const char* unmask_field(UnmaskOrder u) { return u == UnmaskOrder::Prefix ? "prefix" : "confidence"; }

json text_value(const std::string& s) {  // invalid UTF-8 as U+FFFD: a JSON string must be valid
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

double rounded(double v) { return std::round(v * 1e6) / 1e6; }

// The message of an OpenAI error object in `body`, else the body's start.
std::string error_message(const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error")) {
        const json& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
        if (e.is_string()) return e.get<std::string>();
    }
    if (!j.is_discarded() && j.is_object() && j.contains("message") && j["message"].is_string())
        return j["message"].get<std::string>();
    std::string s = body.substr(0, 200);
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s.empty() ? "no explanation" : s;
}

void pause_ms(int ms, const std::atomic<bool>& cancel) {
    for (int t = 0; t < ms && !cancel.load(); t += 10)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10, ms - t)));
}

std::vector<int32_t> id_list(const json& meta, const char* key) {
    std::vector<int32_t> out;
    if (meta.is_object() && meta.contains(key) && meta[key].is_array())
        for (const json& x : meta[key])
            if (x.is_number_integer()) out.push_back(x.get<int32_t>());
    return out;
}

}  // namespace

RemoteChat::RemoteChat(RemoteChatOptions opts) : opts_(std::move(opts)) {
    url_ = opts_.url;
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    if (url_.size() >= 3 && url_.compare(url_.size() - 3, 3, "/v1") == 0) url_.resize(url_.size() - 3);
    if (url_.rfind("http://", 0) != 0 && url_.rfind("https://", 0) != 0)
        throw Error("--server takes an http:// or https:// address, not '" + opts_.url + "'");
    http_.connect_timeout_s = opts_.connect_timeout_s;
    if (!opts_.api_key.empty()) http_.headers.push_back("Authorization: Bearer " + opts_.api_key);

    // The server's models: the chat model (and its block size, context, stop ids when the server
    // says them, as fastdllm serve does in "meta"), and an AR baseline for compare mode.
    const HttpReply r = http_get(url_ + "/v1/models", http_);
    if (!r.ok) throw Error("cannot reach the server at " + url_ + ": " + r.error);
    json list;
    if (r.status == 200) {
        list = json::parse(r.body, nullptr, false);
    } else if (r.status == 401 || r.status == 403) {
        throw Error("the server at " + url_ + " refused the request (HTTP " + std::to_string(r.status) +
                    "): " + error_message(r.body) + (opts_.api_key.empty() ? " (give the key with --api-key KEY)" : ""));
    } else if (opts_.model.empty()) {
        throw Error("the server at " + url_ + " answered GET /v1/models with HTTP " + std::to_string(r.status) + ": " +
                    error_message(r.body) + " (name the model with --remote-model NAME)");
    }
    std::vector<json> entries;
    if (list.is_object() && list.contains("data") && list["data"].is_array())
        for (const json& m : list["data"])
            if (m.is_object() && m.contains("id") && m["id"].is_string()) entries.push_back(m);
    auto meta_of = [&](const std::string& id) {
        for (const json& m : entries)
            if (m["id"] == id) return m.contains("meta") && m["meta"].is_object() ? m["meta"] : json::object();
        return json(json::object());
    };
    auto is_baseline = [](const json& m) {
        return m.contains("meta") && m["meta"].is_object() && m["meta"].value("role", "") == "AR baseline";
    };
    model_ = opts_.model;
    if (model_.empty()) {
        for (const json& m : entries)
            if (!is_baseline(m)) {
                model_ = m["id"].get<std::string>();
                break;
            }
        if (model_.empty() && !entries.empty()) model_ = entries[0]["id"].get<std::string>();
        if (model_.empty())
            throw Error("the server at " + url_ + " lists no model in GET /v1/models (name one with --remote-model NAME)");
    }
    auto listed = [&](const std::string& id) {
        if (entries.empty()) return true;  // a server that lists nothing is taken at its word
        for (const json& m : entries)
            if (m["id"] == id) return true;
        return false;
    };
    auto names = [&] {
        std::string all;
        for (const json& m : entries) all += (all.empty() ? "" : ", ") + m["id"].get<std::string>();
        return all;
    };
    if (!listed(model_))
        throw Error("the server at " + url_ + " has no model '" + model_ + "' (it lists: " + names() + ")");
    if (!opts_.ar_model.empty() && !listed(opts_.ar_model))
        throw Error("the server at " + url_ + " has no model '" + opts_.ar_model + "' (it lists: " + names() + ")");
    ar_model_ = opts_.ar_model;
    if (ar_model_.empty())
        for (const json& m : entries)
            if (is_baseline(m) && m["id"] != model_) {
                ar_model_ = m["id"].get<std::string>();
                break;
            }

    const json meta = meta_of(model_);
    info_.name = model_;
    info_.server = url_;
    info_.diffusion = meta.value("diffusion", false);
    info_.block_size = meta.contains("block_size") && meta["block_size"].is_number_integer() ? meta["block_size"].get<int>() : 32;
    info_.context = meta.contains("context") && meta["context"].is_number_integer() ? meta["context"].get<int64_t>() : 0;
    info_.stop_ids = id_list(meta, "eos_token_ids");
    if (meta.contains("history_turns") && meta["history_turns"].is_number_integer())
        history_turns_ = std::max(-1, meta["history_turns"].get<int>());
    tokens_ = std::make_shared<RemoteTokens>();
    tokens_->set_stops(info_.stop_ids);
    if (!ar_model_.empty()) {
        ar_tokens_ = std::make_shared<RemoteTokens>();
        std::vector<int32_t> ar_stops = id_list(meta_of(ar_model_), "eos_token_ids");
        ar_tokens_->set_stops(ar_stops.empty() ? info_.stop_ids : ar_stops);
    } else {
        ar_tokens_ = tokens_;
    }
    worker_ = std::thread([this] { work(); });
}

RemoteChat::~RemoteChat() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        for (Job& j : queue_) j.cancel->store(true);
        if (running_cancel_) running_cancel_->store(true);
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

ChatBackendInfo RemoteChat::info() const { return info_; }

json RemoteChat::request_body(const std::string& model, const GenerateOptions& g, const std::vector<ChatMessage>& messages) {
    json msgs = json::array();
    for (const ChatMessage& m : messages) msgs.push_back({{"role", m.role}, {"content", text_value(m.content)}});
    json body = {{"model", model},
                 {"messages", msgs},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}, {"include_steps", true}}},
                 {"max_tokens", g.max_new_tokens},
                 {"temperature", rounded(g.sampling.temperature)},
                 {"top_p", rounded(g.sampling.top_p)},
                 {"seed", g.sampling.seed},
                 // fastdllm's own fields (docs/server.md); other servers ignore them
                 {"mode", mode_field(g.mode)},
                 {"threshold", rounded(g.threshold)},
                 {"block_size", g.block_size},
                 {"sub_block_size", g.sub_block_size},
                 {"cache", cache_field(g.cache)},
                 {"unmask", unmask_field(g.unmask)}};
    if (g.sampling.top_k > 0) body["top_k"] = g.sampling.top_k;
    return body;
}

// ---------------------------------------------------------------------------------------------
// Requests

uint64_t RemoteChat::submit(ChatRequest request, ChatEventSink sink) {
    if (request.prompt_ids) throw Error("a prompt of token ids needs a model loaded here, not a server");
    if (request.gen.max_new_tokens < 1) throw Error("max new tokens must be at least 1");
    if (request.messages) {
        const auto& m = *request.messages;
        if (m.empty() || m.back().role != "user") throw Error("the last message must be the user's");
        for (const ChatMessage& x : m)
            if (x.role != "system" && x.role != "user" && x.role != "assistant")
                throw Error("unknown message role \"" + x.role + "\" (system, user or assistant)");
    }
    std::lock_guard<std::mutex> lk(mu_);
    Job job;
    job.id = next_id_++;
    job.req = std::move(request);
    job.sink = std::move(sink);
    const uint64_t id = job.id;
    queue_.push_back(std::move(job));
    cv_.notify_all();
    return id;
}

void RemoteChat::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lk(mu_);
    if (running_cancel_ && running_id_ == id) running_cancel_->store(true);
    for (Job& j : queue_)
        if (j.id == id) j.cancel->store(true);
}

void RemoteChat::cancel_all() {
    std::lock_guard<std::mutex> lk(mu_);
    if (running_cancel_) running_cancel_->store(true);
    for (Job& j : queue_) j.cancel->store(true);
}

bool RemoteChat::busy() const {
    std::lock_guard<std::mutex> lk(mu_);
    return !queue_.empty() || running_cancel_ != nullptr;
}

void RemoteChat::wait_idle() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return queue_.empty() && !running_cancel_ && !delivering_; });
}

void RemoteChat::work() {
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping
            job = std::move(queue_.front());
            queue_.pop_front();
            running_cancel_ = job.cancel;
            running_id_ = job.id;
        }
        run(job);
        // Idle before Done goes out (a client that saw Done may change the conversation at once);
        // wait_idle() also waits for Done to be delivered.
        {
            std::lock_guard<std::mutex> lk(mu_);
            running_cancel_.reset();
            running_id_ = 0;
            delivering_ = true;
        }
        ChatEvent e;
        e.kind = ChatEvent::Kind::Done;
        e.request = job.id;
        e.cancelled = job.cancel->load();
        job.sink(std::move(e));
        {
            std::lock_guard<std::mutex> lk(mu_);
            delivering_ = false;
        }
        cv_.notify_all();
    }
}

std::vector<ChatMessage> RemoteChat::prompt_messages(const std::string& prompt) const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    std::vector<ChatMessage> out;
    if (system_set_) out.push_back({"system", system_, {}});
    size_t first = 0;
    if (history_turns_ >= 0 && messages_.size() > 2 * size_t(history_turns_))
        first = messages_.size() - 2 * size_t(history_turns_);
    while (first < messages_.size() && messages_[first].role != "user") first++;  // kept history starts with a question
    for (size_t i = first; i < messages_.size(); i++) out.push_back({messages_[i].role, messages_[i].content, {}});
    out.push_back({"user", prompt, {}});
    return out;
}

// One request's lanes (the worker sends its Done event after).
void RemoteChat::run(Job& job) {
    if (job.cancel->load()) return;
    const ChatRequest& r = job.req;
    const std::vector<ChatMessage> msgs = r.messages ? *r.messages : prompt_messages(r.prompt);
    const bool compare = r.mode == ChatMode::Compare;
    const std::string label =
        model_ + (compare || r.gen.mode == DecodeMode::Diffusion ? " · diffusion" : " · AR decoding");
    const std::string ar_name = ar_model_.empty() ? model_ : ar_model_;
    const std::string ar_label =
        ar_model_.empty() ? model_ + " · AR decoding (the server lists no AR baseline: same weights)" : ar_model_ + " · AR baseline";
    GenerateOptions ar = r.gen;
    ar.mode = DecodeMode::AR;
    if (r.baseline) {
        run_lane(job, 0, ar_name, ar_label, ar, msgs, ar_tokens_, false);
    } else {
        bool go_on = true;
        if (compare) go_on = run_lane(job, 1, ar_name, ar_label, ar, msgs, ar_tokens_, false) && !job.cancel->load();
        if (go_on) {
            GenerateOptions g = r.gen;
            if (compare) g.mode = DecodeMode::Diffusion;
            run_lane(job, 0, model_, label, g, msgs, tokens_, !r.messages);
        }
    }
}

bool RemoteChat::run_lane(Job& job, int lane, const std::string& model, const std::string& label, const GenerateOptions& g,
                          const std::vector<ChatMessage>& messages, const std::shared_ptr<RemoteTokens>& tokens, bool keep) {
    const ChatRequest& r = job.req;
    const std::atomic<bool>& cancel = *job.cancel;
    ChatEvent start;
    start.kind = ChatEvent::Kind::LaneStarted;
    start.request = job.id;
    start.lane = lane;
    start.tokens = tokens;
    start.text = label;
    job.sink(std::move(start));

    AnswerStream stream(
        tokens,
        [&](const DecodeEvent& ev) {
            ChatEvent e;
            e.kind = ChatEvent::Kind::Decode;
            e.request = job.id;
            e.lane = lane;
            e.decode = ev;
            job.sink(std::move(e));
            if (r.step_delay_ms > 0 && ev.type == DecodeEvent::Type::Step) pause_ms(r.step_delay_ms, cancel);
        },
        now_seconds());
    SseReader sse;
    auto receive = [&](const char* data, size_t n) {
        sse.feed(data, n, [&](const std::string& event, const std::string& payload) {
            stream.on_data(payload, now_seconds());
            if (event == "error" && stream.error().empty())  // an error event whose data is no error object
                stream.on_data(json({{"error", {{"message", payload}}}}).dump(), now_seconds());
        });
        return stream.error().empty() && !stream.done() && !cancel.load();
    };
    const std::string body = request_body(model, g, messages).dump(-1, ' ', false, json::error_handler_t::replace);
    const HttpReply reply = http_post_stream(url_ + "/v1/chat/completions", http_, body, receive, &cancel);

    std::string error;
    const bool cancelled = cancel.load() && stream.error().empty();
    if (!stream.error().empty()) {
        error = "the server: " + stream.error();
    } else if (cancelled) {
        // stopped on request: the server cancels the answer when the connection closes
    } else if (!reply.ok && !reply.aborted) {
        error = (reply.status == 0 ? "cannot reach the server at " : "the connection to the server at ") + url_ +
                (reply.status == 0 ? ": " : " broke: ") + reply.error;
    } else if (reply.status != 200) {
        error = "the server refused the request (HTTP " + std::to_string(reply.status) + "): " + error_message(reply.body);
    } else if (!stream.done() && stream.finish_reason().empty()) {
        error = "the server ended the answer early (no finish reason, no [DONE])";
    }

    ChatEvent fin;
    fin.kind = ChatEvent::Kind::LaneFinished;
    fin.request = job.id;
    fin.lane = lane;
    fin.error = error;
    if (error.empty()) {
        stream.finish(cancelled, now_seconds());
        auto result = std::make_shared<GenerateResult>();
        result->tokens = stream.tokens();
        result->stats = stream.stats();
        result->cancelled = cancelled;
        result->stopped = stream.finish_reason() == "stop";
        result->steps.clear();
        fin.result = std::move(result);
        fin.cancelled = cancelled;
        fin.text = stream.content();
        if (keep) {
            std::lock_guard<std::mutex> lk(conv_mu_);
            messages_.push_back({"user", messages.back().content, {}});
            messages_.push_back({"assistant", stream.content(), {}});
        }
    }
    job.sink(std::move(fin));
    return error.empty();
}

// ---------------------------------------------------------------------------------------------
// The conversation

void RemoteChat::require_idle(const char* what) const {
    if (busy()) throw Error(std::string("wait for the answer to finish before ") + what);
}

std::string RemoteChat::system() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return system_;
}

void RemoteChat::set_system(const std::string& text) {
    require_idle("changing the system prompt");
    std::lock_guard<std::mutex> lk(conv_mu_);
    system_ = text;
    system_set_ = true;
}

int RemoteChat::history_turns() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return history_turns_;
}

void RemoteChat::set_history_turns(int n) {
    require_idle("changing the history");
    std::lock_guard<std::mutex> lk(conv_mu_);
    history_turns_ = n < 0 ? -1 : n;
}

void RemoteChat::clear() {
    require_idle("clearing the conversation");
    std::lock_guard<std::mutex> lk(conv_mu_);
    messages_.clear();
}

std::vector<ChatMessage> RemoteChat::messages() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return messages_;
}

json RemoteChat::to_json() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    json msgs = json::array();
    for (const ChatMessage& m : messages_) msgs.push_back({{"role", m.role}, {"content", text_value(m.content)}});
    json j = {{"format", "fastdllm-chat-1"}};
    if (system_set_) j["system"] = text_value(system_);
    j["messages"] = msgs;
    return j;
}

void RemoteChat::from_json(const json& j) {
    require_idle("loading a conversation");
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
        throw Error("not a fastdllm chat session (needs a \"messages\" list)");
    std::vector<ChatMessage> msgs;
    for (const json& m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
            !m["content"].is_string())
            throw Error("each message needs a \"role\" and a \"content\" string");
        const std::string role = m["role"];
        if (role != "user" && role != "assistant" && role != "system") throw Error("unknown message role \"" + role + "\"");
        msgs.push_back({role, m["content"], {}});
    }
    if (j.contains("system") && !j["system"].is_string()) throw Error("\"system\" must be a string");
    std::lock_guard<std::mutex> lk(conv_mu_);
    messages_ = std::move(msgs);
    if (j.contains("system")) {
        system_ = j["system"];
        system_set_ = true;
    }
}

}  // namespace fdl::client
