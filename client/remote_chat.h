// The chat on a model served elsewhere: a ChatBackend that sends each request to an
// OpenAI-compatible server (fastdllm serve, SGLang, vLLM, llama-server, ...) at
// URL/v1/chat/completions as a stream, and turns the stream back into ChatEvents
// (client/answer_stream.h), so the TUI and the plain REPL work on it unchanged. The
// conversation lives here; each request sends the system prompt, the kept history and the new
// message. No model is loaded and nothing of the engine runs: this library links only
// engine/io, libcurl and nlohmann_json.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/answer_stream.h"
#include "client/http_client.h"
#include "engine/chat/chat_backend.h"

namespace fdl::client {

struct RemoteChatOptions {
    std::string url;       // the server: http(s)://HOST:PORT[/PREFIX] (a trailing /v1 is allowed)
    std::string api_key;   // sent as "Authorization: Bearer KEY" ("" = none)
    std::string model;     // the request's "model" ("" = the first id of GET /v1/models)
    // Compare mode's AR baseline ("" = the /v1/models entry whose meta.role is "AR baseline",
    // else the model itself with "mode": "ar").
    std::string ar_model;
    double connect_timeout_s = 10;
};

class RemoteChat : public ChatBackend {
public:
    // Asks the server for its models (GET /v1/models) and starts the worker. Throws fdl::Error,
    // one line, when the server cannot be reached or names no model.
    explicit RemoteChat(RemoteChatOptions opts);
    ~RemoteChat() override;  // cancels what is queued or running and joins the worker
    RemoteChat(const RemoteChat&) = delete;
    RemoteChat& operator=(const RemoteChat&) = delete;

    ChatBackendInfo info() const override;
    const std::string& url() const { return url_; }
    const std::string& model() const { return model_; }
    const std::string& ar_model() const { return ar_model_; }  // "" when the server lists none

    uint64_t submit(ChatRequest request, ChatEventSink sink) override;
    void cancel(uint64_t id) override;
    void cancel_all() override;
    bool busy() const override;
    void wait_idle() override;

    std::string system() const override;  // "" until set: the server's default applies
    void set_system(const std::string& text) override;
    int history_turns() const override;
    void set_history_turns(int n) override;
    void clear() override;
    std::vector<ChatMessage> messages() const override;
    nlohmann::json to_json() const override;
    void from_json(const nlohmann::json& j) override;

    // The body of a chat request (tests read it).
    static nlohmann::json request_body(const std::string& model, const GenerateOptions& g,
                                       const std::vector<ChatMessage>& messages);

private:
    struct Job {
        uint64_t id = 0;
        ChatRequest req;
        ChatEventSink sink;
        std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
    };
    RemoteChatOptions opts_;
    std::string url_;  // without the trailing "/" or "/v1"
    HttpOptions http_;
    ChatBackendInfo info_;
    std::string model_, ar_model_;
    std::shared_ptr<RemoteTokens> tokens_, ar_tokens_;

    mutable std::mutex conv_mu_;  // the conversation
    std::string system_;
    bool system_set_ = false;
    int history_turns_ = -1;
    std::vector<ChatMessage> messages_;

    mutable std::mutex mu_;  // the queue and the running job
    std::condition_variable cv_;
    std::deque<Job> queue_;
    std::shared_ptr<std::atomic<bool>> running_cancel_;  // the running job's flag (null when idle)
    uint64_t running_id_ = 0;
    bool delivering_ = false;  // the last request's Done event is being sent
    uint64_t next_id_ = 1;
    bool stop_ = false;
    std::thread worker_;

    void work();
    void run(Job& job);  // its lanes; the worker sends Done
    // One lane's answer; returns false when it failed. `keep`: add the exchange to the conversation.
    bool run_lane(Job& job, int lane, const std::string& model, const std::string& label, const GenerateOptions& g,
                  const std::vector<ChatMessage>& messages, const std::shared_ptr<RemoteTokens>& tokens, bool keep);
    std::vector<ChatMessage> prompt_messages(const std::string& prompt) const;
    void require_idle(const char* what) const;
};

}  // namespace fdl::client
