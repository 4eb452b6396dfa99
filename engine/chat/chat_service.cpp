#include "engine/chat/chat_service.h"

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/decode/stop_tokens.h"
#include "engine/decode/text_stream.h"
#include "engine/io/clock.h"
#include "engine/io/error.h"
#include "engine/io/files.h"
#include "engine/model/load_progress.h"

namespace fdl {

const char* chat_mode_name(ChatMode m) { return m == ChatMode::Compare ? "compare" : "single"; }

// ---------------------------------------------------------------------------------------------
// ChatEventQueue

ChatEventSink ChatEventQueue::sink() {
    std::shared_ptr<State> st = st_;
    return [st](ChatEvent&& e) {
        {
            std::lock_guard<std::mutex> lk(st->mu);
            st->events.push_back(std::move(e));
        }
        st->cv.notify_all();
    };
}

std::deque<ChatEvent> ChatEventQueue::take_all() {
    std::lock_guard<std::mutex> lk(st_->mu);
    std::deque<ChatEvent> out;
    out.swap(st_->events);
    return out;
}

bool ChatEventQueue::wait_next(ChatEvent& out, double timeout_s) {
    std::unique_lock<std::mutex> lk(st_->mu);
    if (!st_->cv.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return !st_->events.empty(); }))
        return false;
    out = std::move(st_->events.front());
    st_->events.pop_front();
    return true;
}

void ChatEventQueue::clear() {
    std::lock_guard<std::mutex> lk(st_->mu);
    st_->events.clear();
}

// ---------------------------------------------------------------------------------------------
// ChatService

ChatService::ChatService(const ChatServiceOptions& opts) : opts_(opts) {
    if (opts.model_dir.empty()) throw Error("no model folder given (-m DIR)");
    LoadOptions lo;
    lo.weight_type = opts.weight_type;
    lo.progress = opts.progress;
    model_ = Model::load(opts.model_dir, lo);
    session_ = std::make_unique<ChatSession>(*model_);
    worker_ = std::thread([this] { work(); });
}

ChatService::~ChatService() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        for (Job& j : queue_) j.cancelled = true;
        cancel_.store(true);
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

GenerateOptions ChatService::default_options() const {
    GenerateOptions g;
    g.mode = config().is_diffusion ? DecodeMode::Diffusion : DecodeMode::AR;
    if (config().is_diffusion) g.block_size = config().bd_size;
    g.record_steps = false;
    return g;
}

uint64_t ChatService::submit(ChatRequest request, ChatEventSink sink) {
    GenerateOptions g = request.gen;
    if (request.mode == ChatMode::Compare) g.mode = DecodeMode::Diffusion;
    g.validate();
    if (request.messages) {
        const auto& m = *request.messages;
        if (m.empty() || m.back().role != "user") throw Error("the last message must be the user's");
        for (const ChatMessage& x : m)
            if (x.role != "system" && x.role != "user" && x.role != "assistant")
                throw Error("unknown message role \"" + x.role + "\" (system, user or assistant)");
    }
    std::lock_guard<std::mutex> lk(mu_);
    const uint64_t id = next_id_++;
    queue_.push_back(Job{id, std::move(request), std::move(sink)});
    cv_.notify_all();
    return id;
}

void ChatService::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lk(mu_);
    if (running_ == id) cancel_.store(true);
    for (Job& j : queue_)
        if (j.id == id) j.cancelled = true;
}

void ChatService::cancel_all() {
    std::lock_guard<std::mutex> lk(mu_);
    if (running_) cancel_.store(true);
    for (Job& j : queue_) j.cancelled = true;
}

bool ChatService::busy() const {
    std::lock_guard<std::mutex> lk(mu_);
    return running_ != 0 || !queue_.empty();
}

size_t ChatService::queued() const {
    std::lock_guard<std::mutex> lk(mu_);
    return queue_.size();
}

void ChatService::wait_idle() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return running_ == 0 && queue_.empty(); });
}

void ChatService::work() {
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, nothing left to tell
            job = std::move(queue_.front());
            queue_.pop_front();
            running_ = job.id;
            cancel_.store(job.cancelled);
        }
        run(job);
        {
            std::lock_guard<std::mutex> lk(mu_);
            running_ = 0;
        }
        cv_.notify_all();
    }
}

namespace {

void pause_ms(int ms, const std::atomic<bool>& cancel) {
    for (int t = 0; t < ms && !cancel.load(); t += 10)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10, ms - t)));
}

// The request's own conversation: its system message (else the model's default) and the rest.
Conversation conversation_of(const std::vector<ChatMessage>& msgs, const std::string& default_system) {
    Conversation c;
    c.system = default_system;
    size_t i = 0;
    if (!msgs.empty() && msgs[0].role == "system") c.system = msgs[i++].content;
    for (; i + 1 < msgs.size(); i++) c.messages.push_back({msgs[i].role, msgs[i].content, {}});
    return c;
}

}  // namespace

void ChatService::run(Job& job) {
    auto done = [&] {
        ChatEvent e;
        e.kind = ChatEvent::Kind::Done;
        e.request = job.id;
        e.cancelled = cancel_.load();
        job.sink(std::move(e));
    };
    if (cancel_.load()) {
        done();
        return;
    }
    std::lock_guard<std::mutex> conv(conv_mu_);
    ChatRequest& r = job.req;
    const std::string label = config().name + (r.mode == ChatMode::Compare || r.gen.mode == DecodeMode::Diffusion
                                                   ? " · diffusion"
                                                   : " · AR decoding");
    if (!r.reuse_cache) session_->cache().clear();
    if (r.baseline) {
        try {
            ensure_ar(job.sink);
        } catch (const std::exception& e) {
            ChatEvent f;
            f.kind = ChatEvent::Kind::LaneFinished;
            f.request = job.id;
            f.error = std::string("AR baseline: ") + e.what();
            job.sink(std::move(f));
            done();
            return;
        }
    }
    Model& lane_model = r.baseline && ar_model_ ? *ar_model_ : *model_;
    ChatSession& lane_session = r.baseline ? *ar_session_ : *session_;
    if (r.prompt_ids) {
        run_lane(job, 0, lane_session, lane_model, r.baseline ? ar_label_ : label, r.gen);
        done();
        return;
    }
    if (r.baseline) {  // the request's messages, answered by the baseline in a conversation of their own
        const Conversation kept_ar = ar_session_->conversation();
        ar_session_->set_conversation(
            r.messages ? conversation_of(*r.messages, default_system_prompt(lane_model.config().dir)) : session_->conversation());
        job.req.prompt = r.messages ? r.messages->back().content : r.prompt;
        GenerateOptions g = r.gen;
        g.mode = DecodeMode::AR;
        run_lane(job, 0, *ar_session_, lane_model, ar_label_, g);
        ar_session_->set_conversation(kept_ar);
        done();
        return;
    }
    // A request with its own messages runs in the conversation's place, which is put back after.
    std::optional<Conversation> kept;
    std::string prompt = r.prompt;
    if (r.messages) {
        kept = session_->conversation();
        session_->set_conversation(conversation_of(*r.messages, default_system_prompt(config().dir)));
        prompt = r.messages->back().content;
    }
    bool go_on = true;
    if (r.mode == ChatMode::Compare) {
        try {
            ensure_ar(job.sink);
            ar_session_->set_history_turns(session_->history_turns());
            ar_session_->from_json(session_->to_json());  // the same conversation so far
        } catch (const std::exception& e) {
            ChatEvent f;
            f.kind = ChatEvent::Kind::LaneFinished;
            f.request = job.id;
            f.lane = 1;
            f.error = std::string("AR baseline: ") + e.what();
            job.sink(std::move(f));
            go_on = false;
        }
        if (go_on) {
            GenerateOptions g = r.gen;
            g.mode = DecodeMode::AR;
            Model& m = ar_model_ ? *ar_model_ : *model_;
            job.req.prompt = prompt;
            go_on = run_lane(job, 1, *ar_session_, m, ar_label_, g) && !cancel_.load();
        }
    }
    if (go_on) {
        GenerateOptions g = r.gen;
        if (r.mode == ChatMode::Compare) g.mode = DecodeMode::Diffusion;
        job.req.prompt = prompt;
        run_lane(job, 0, *session_, *model_, label, g);
    }
    if (kept) session_->set_conversation(std::move(*kept));
    done();
}

bool ChatService::run_lane(Job& job, int lane, ChatSession& session, Model& model, const std::string& label,
                           GenerateOptions g) {
    const ChatRequest& r = job.req;
    ChatEvent start;
    start.kind = ChatEvent::Kind::LaneStarted;
    start.request = job.id;
    start.lane = lane;
    start.model = &model;
    start.text = label;
    job.sink(std::move(start));

    TextStream text(model.has_tokenizer() ? &model.tokenizer() : nullptr, stop_tokens_of(model.config(), g));
    auto on_event = [&](const DecodeEvent& ev) {
        ChatEvent e;
        e.kind = ChatEvent::Kind::Decode;
        e.request = job.id;
        e.lane = lane;
        e.decode = ev;
        e.text = text.on_event(ev);
        job.sink(std::move(e));
        if (r.step_delay_ms > 0 && ev.type == DecodeEvent::Type::Step) pause_ms(r.step_delay_ms, cancel_);
    };
    ChatEvent fin;
    fin.kind = ChatEvent::Kind::LaneFinished;
    fin.request = job.id;
    fin.lane = lane;
    try {
        auto result = std::make_shared<GenerateResult>();
        if (r.prompt_ids) {
            *result = generate(model, session.cache(), *r.prompt_ids, g, on_event, &cancel_);
            fin.text = model.has_tokenizer() ? model.tokenizer().decode(result->tokens, true) : "";
        } else {
            *result = session.reply(r.prompt, g, on_event, &cancel_);
            fin.text = session.messages().empty() ? "" : session.messages().back().content;
            fin.left_out = session.left_out_for_context();
        }
        fin.cancelled = result->cancelled;
        fin.result = std::move(result);
    } catch (const std::exception& e) {
        fin.error = e.what();
    }
    const bool ok = fin.error.empty();
    job.sink(std::move(fin));
    return ok;
}

// Finds or loads the AR baseline: ar_model_dir, else demo-ar beside the chat model, else the chat
// model itself decoded autoregressively. Runs on the worker (a baseline takes seconds to load).
void ChatService::load_baseline() {
    ensure_ar([](ChatEvent&&) {});
}

std::string ChatService::baseline_name() const {
    std::lock_guard<std::mutex> lk(const_cast<std::mutex&>(ar_mu_));
    return ar_model_ ? ar_model_->config().name : ar_session_ ? config().name : "";
}

int64_t ChatService::prompt_tokens(const ChatRequest& r) {
    Model* m = model_.get();
    if (r.baseline) {
        std::lock_guard<std::mutex> lk(ar_mu_);
        if (ar_model_) m = ar_model_.get();
    }
    if (r.prompt_ids) return int64_t(r.prompt_ids->size());
    ChatSession s(*m);
    if (r.messages) {
        s.set_conversation(conversation_of(*r.messages, default_system_prompt(m->config().dir)));
        return int64_t(s.prompt_with(r.messages->back().content).size());
    }
    {
        std::lock_guard<std::mutex> lk(conv_mu_);
        s.set_conversation(session_->conversation());
        s.set_history_turns(session_->history_turns());
    }
    return int64_t(s.prompt_with(r.prompt).size());
}

void ChatService::ensure_ar(const ChatEventSink& sink) {
    std::lock_guard<std::mutex> lk(ar_mu_);
    if (ar_session_) return;
    auto info = [&](const std::string& text) {
        ChatEvent e;
        e.kind = ChatEvent::Kind::Info;
        e.text = text;
        sink(std::move(e));
    };
    std::string dir = opts_.ar_model_dir;
    if (dir.empty()) {
        namespace fs = std::filesystem;
        std::error_code ec;
        const fs::path m = fs::weakly_canonical(fs::path(opts_.model_dir), ec);
        const fs::path cand = m.parent_path() / "demo-ar";
        if (!ec && fs::exists(cand / "config.json", ec) && fs::weakly_canonical(cand, ec) != m) dir = cand.string();
    }
    if (dir.empty()) {
        ar_session_ = std::make_unique<ChatSession>(*model_);
        ar_label_ = config().name + " · AR decoding (no AR model found: same weights)";
        return;
    }
    info("loading the AR baseline " + dir + " …");
    LoadOptions lo;
    lo.weight_type = opts_.weight_type;
    const double t0 = now_seconds();
    lo.progress = load_progress([&](const std::string& text) { info("loading the AR baseline " + dir + " … " + text); });
    ar_model_ = Model::load(dir, lo);
    // replaces the "loading" status line, which would otherwise stay up for its usual time
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", now_seconds() - t0);
    info("loaded the AR baseline " + ar_model_->config().name + " in " + secs + " s");
    ar_session_ = std::make_unique<ChatSession>(*ar_model_);
    ar_label_ = ar_model_->config().name + " · AR baseline";
}

// ---------------------------------------------------------------------------------------------
// The conversation

void ChatService::require_idle(const char* what) const {
    if (busy()) throw Error(std::string("wait for the answer to finish before ") + what);
}

std::string ChatService::system() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return session_->system();
}

void ChatService::set_system(const std::string& text) {
    require_idle("changing the system prompt");
    std::lock_guard<std::mutex> lk(conv_mu_);
    session_->set_system(text);
}

int ChatService::history_turns() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return session_->history_turns();
}

void ChatService::set_history_turns(int n) {
    require_idle("changing the history");
    std::lock_guard<std::mutex> lk(conv_mu_);
    session_->set_history_turns(n);
}

void ChatService::clear() {
    require_idle("clearing the conversation");
    std::lock_guard<std::mutex> lk(conv_mu_);
    session_->clear();
}

std::vector<ChatMessage> ChatService::messages() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return session_->messages();
}

nlohmann::json ChatService::to_json() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return session_->to_json();
}

void ChatService::from_json(const nlohmann::json& j) {
    require_idle("loading a conversation");
    std::lock_guard<std::mutex> lk(conv_mu_);
    session_->from_json(j);
}

std::string ChatService::saved_text() const {
    return to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void ChatService::save(const std::string& path) const {
    namespace fs = std::filesystem;
    const fs::path p(path);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    write_file_atomic(path, saved_text());
}

void ChatService::load(const std::string& path) {
    const nlohmann::json j = read_json_file(path);
    try {
        from_json(j);
    } catch (const Error& e) {
        const std::string w = e.what();
        throw w.rfind(path, 0) == 0 ? e : file_error(path, w);
    }
}

}  // namespace fdl
