// The chat as a service: the loaded models (the chat model and, for compare mode, an AR
// baseline), the conversation with its KV cache, and one worker thread that answers queued
// requests one at a time in arrival order. Any thread may submit or cancel; each request's
// events go to the sink its client gave, on the worker thread, while the service's conversation
// is locked: a sink must not wait on a lock held by a thread that reads the conversation. The TUI, the plain REPL and
// `fastdllm generate` are clients of it; a server is one more.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/chat/chat_backend.h"
#include "engine/chat/chat_session.h"
#include "engine/decode/generate.h"
#include "engine/model/forward_group.h"
#include "engine/model/model.h"

namespace fdl {

struct ChatServiceOptions {
    std::string model_dir;
    // Compare mode's baseline: "" takes demo-ar beside model_dir when it is there, else the chat
    // model's own weights decoded autoregressively. Loaded on the first compare request.
    std::string ar_model_dir;
    std::optional<WeightType> weight_type;  // empty: auto (LoadOptions)
    // Loading the chat model (LoadOptions::progress). The baseline reports through Info events.
    std::function<void(uint64_t done, uint64_t total)> progress;
    // Requests answered at once, each in a slot with its own KV cache; their forward passes run
    // together, rows stacked into one pass (ForwardGroup), since one-token passes are bound by
    // reading the weights, which all of them share. The conversation lives in slot 0.
    int parallel = 1;
};

class ChatService : public ChatBackend {
public:
    // Loads the chat model (throws fdl::Error) and starts the worker.
    explicit ChatService(const ChatServiceOptions& opts);
    ~ChatService() override;  // cancels what is queued or running and joins the worker
    ChatService(const ChatService&) = delete;
    ChatService& operator=(const ChatService&) = delete;

    Model& model() { return *model_; }
    const ModelConfig& config() const { return model_->config(); }
    // The decoding settings a request gets by default: the model's natural decoder and block size.
    GenerateOptions default_options() const;
    ChatBackendInfo info() const override;

    // Queues a request (checked first: throws fdl::Error for invalid options). Returns its id.
    uint64_t submit(ChatRequest request, ChatEventSink sink) override;
    // Stops a request between forward passes (a queued one never starts); its client still gets
    // LaneFinished/Done, marked cancelled. Unknown or finished ids are ignored.
    void cancel(uint64_t id) override;
    void cancel_all() override;
    bool busy() const override;  // a request is running or queued
    size_t queued() const;  // requests waiting for the worker
    void wait_idle() override;

    // The prompt a request would run, in tokens (its messages or raw ids; the conversation's
    // next turn otherwise), on the model that would answer it. Thread-safe.
    int64_t prompt_tokens(const ChatRequest& r);
    // The AR baseline's name once it is known ("" before compare mode or a baseline request).
    std::string baseline_name() const;
    // Loads the AR baseline now (a server does it at start instead of on its first request).
    void load_baseline();

    // The conversation. Changes are refused (fdl::Error) while a request is running or queued;
    // reads then wait for it.
    std::string system() const override;
    void set_system(const std::string& text) override;
    int history_turns() const override;
    void set_history_turns(int n) override;
    void clear() override;
    std::vector<ChatMessage> messages() const override;
    nlohmann::json to_json() const override;
    void from_json(const nlohmann::json& j) override;
    // The conversation as a saved file holds it (pretty JSON; invalid UTF-8 saved as U+FFFD).

private:
    struct Job {
        uint64_t id = 0;
        ChatRequest req;
        ChatEventSink sink;
        bool cancelled = false;
    };
    // A worker thread with its own caches. Slot 0's session is the service's conversation; the
    // others keep their last request's conversation, so its continuation reuses the cache there.
    struct Slot {
        int index = 0;
        std::thread worker;
        std::unique_ptr<ChatSession> session;
        std::unique_ptr<ChatSession> ar_session;  // compare mode and baseline requests
        std::optional<Job> job;                   // assigned to this slot, not finished
        std::atomic<bool> cancel{false};          // the job's cancel flag
        std::vector<std::pair<std::string, std::string>> last;  // roles and texts of its last conversation
    };
    ChatServiceOptions opts_;
    std::unique_ptr<Model> model_;
    std::unique_ptr<Model> ar_model_;  // compare mode's baseline, when it is another model
    std::unique_ptr<ForwardGroup> group_, ar_group_;  // with several slots: their shared passes
    std::string ar_label_;
    bool ar_ready_ = false;
    std::mutex ar_mu_;  // loading the baseline (a worker, or load_baseline())
    // Slot 0's session is the conversation, guarded by conv_mu_, which slot 0's worker holds
    // while it answers.
    mutable std::mutex conv_mu_;
    std::vector<std::unique_ptr<Slot>> slots_;

    mutable std::mutex mu_;  // the queue and the slots' jobs
    std::condition_variable cv_;
    std::deque<Job> queue_;
    uint64_t next_id_ = 1;
    bool stop_ = false;

    ChatSession& conversation() const { return *slots_[0]->session; }
    void work(Slot& slot);
    void dispatch_locked();
    int placement_score(const Slot& slot, const Job& job) const;
    void run(Slot& slot, Job& job);
    bool run_lane(Slot& slot, Job& job, int lane, ChatSession& session, Model& model, const std::string& label,
                  GenerateOptions g);
    void ensure_ar(const ChatEventSink& info);
    ChatSession& ar_session(Slot& slot);
    void require_idle(const char* what) const;
};

}  // namespace fdl
