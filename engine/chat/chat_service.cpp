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
    if (opts.parallel < 1 || opts.parallel > 64) throw Error("parallel requests must be in [1, 64]");
    LoadOptions lo;
    lo.weight_type = opts.weight_type;
    lo.progress = opts.progress;
    model_ = Model::load(opts.model_dir, lo);
    if (opts.parallel > 1) group_ = std::make_unique<ForwardGroup>(*model_);
    for (int i = 0; i < opts.parallel; i++) {
        slots_.push_back(std::make_unique<Slot>());
        slots_.back()->index = i;
        slots_.back()->session = std::make_unique<ChatSession>(*model_);
    }
    for (auto& s : slots_) {
        Slot* slot = s.get();
        slot->worker = std::thread([this, slot] { work(*slot); });
    }
}

ChatService::~ChatService() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        for (Job& j : queue_) j.cancelled = true;
        for (auto& s : slots_) s->cancel.store(true);
    }
    cv_.notify_all();
    for (auto& s : slots_)
        if (s->worker.joinable()) s->worker.join();
}

GenerateOptions ChatService::default_options() const {
    GenerateOptions g;
    g.mode = config().is_diffusion ? DecodeMode::Diffusion : DecodeMode::AR;
    if (config().is_diffusion) g.block_size = config().bd_size;
    g.record_steps = false;
    return g;
}

ChatBackendInfo ChatService::info() const {
    ChatBackendInfo i;
    const ModelConfig& c = config();
    i.name = c.name;
    i.diffusion = c.is_diffusion;
    i.block_size = c.bd_size;
    i.context = c.max_position_embeddings;
    i.weights = weight_type_name(model_->weight_type());
    i.stop_ids = c.eos_token_ids;
    return i;
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
    Job job;
    job.id = id;
    job.req = std::move(request);
    job.sink = std::move(sink);
    queue_.push_back(std::move(job));
    dispatch_locked();
    return id;
}

void ChatService::cancel(uint64_t id) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& s : slots_)
        if (s->job && s->job->id == id) s->cancel.store(true);
    for (Job& j : queue_)
        if (j.id == id) j.cancelled = true;
}

void ChatService::cancel_all() {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& s : slots_)
        if (s->job) s->cancel.store(true);
    for (Job& j : queue_) j.cancelled = true;
}

bool ChatService::busy() const {
    std::lock_guard<std::mutex> lk(mu_);
    if (!queue_.empty()) return true;
    for (auto& s : slots_)
        if (s->job) return true;
    return false;
}

size_t ChatService::queued() const {
    std::lock_guard<std::mutex> lk(mu_);
    return queue_.size();
}

void ChatService::wait_idle() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] {
        if (!queue_.empty()) return false;
        for (auto& s : slots_)
            if (s->job) return false;
        return true;
    });
}

// How well a job fits a slot's cache: the number of leading messages the slot's last
// conversation shares with the job's (a continued conversation goes back where its prefix is).
int ChatService::placement_score(const Slot& slot, const Job& job) const {
    if (!job.req.messages) return 0;
    const auto& m = *job.req.messages;
    int n = 0;
    while (size_t(n) < m.size() && size_t(n) < slot.last.size() && m[size_t(n)].role == slot.last[size_t(n)].first &&
           m[size_t(n)].content == slot.last[size_t(n)].second)
        n++;
    return n;
}

// Hands queued jobs to free slots in arrival order. A job on the service's conversation (no
// messages or ids of its own) runs in slot 0, which holds the conversation; the queue waits for
// it there rather than let later jobs overtake it.
void ChatService::dispatch_locked() {
    while (!queue_.empty()) {
        Job& j = queue_.front();
        const bool on_conversation = !j.req.messages && !j.req.prompt_ids;
        Slot* best = nullptr;
        int best_score = -1;
        for (auto& s : slots_) {
            if (s->job || (on_conversation && s->index != 0)) continue;
            const int score = placement_score(*s, j);
            if (score > best_score) best = s.get(), best_score = score;
        }
        if (!best) break;
        best->cancel.store(j.cancelled);
        best->job = std::move(j);
        queue_.pop_front();
    }
    cv_.notify_all();
}

void ChatService::work(Slot& slot) {
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return slot.job.has_value() || (stop_ && queue_.empty()); });
            if (!slot.job) return;  // stopping, nothing left to tell
        }
        run(slot, *slot.job);  // only this worker touches its job until it is reset
        {
            std::lock_guard<std::mutex> lk(mu_);
            slot.job.reset();
            dispatch_locked();
        }
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

ChatSession& ChatService::ar_session(Slot& slot) {
    if (!slot.ar_session) slot.ar_session = std::make_unique<ChatSession>(ar_model_ ? *ar_model_ : *model_);
    return *slot.ar_session;
}

void ChatService::run(Slot& slot, Job& job) {
    auto done = [&] {
        ChatEvent e;
        e.kind = ChatEvent::Kind::Done;
        e.request = job.id;
        e.cancelled = slot.cancel.load();
        job.sink(std::move(e));
    };
    if (slot.cancel.load()) {
        done();
        return;
    }
    // Slot 0 holds the conversation: its session is locked while it answers (readers wait).
    std::unique_lock<std::mutex> conv(conv_mu_, std::defer_lock);
    if (slot.index == 0) conv.lock();
    ChatSession& session = *slot.session;
    ChatRequest& r = job.req;
    const std::string label = config().name + (r.mode == ChatMode::Compare || r.gen.mode == DecodeMode::Diffusion
                                                   ? " · diffusion"
                                                   : " · AR decoding");
    auto fail = [&](int lane, const std::string& what) {
        ChatEvent f;
        f.kind = ChatEvent::Kind::LaneFinished;
        f.request = job.id;
        f.lane = lane;
        f.error = what;
        job.sink(std::move(f));
    };
    if (r.baseline || r.mode == ChatMode::Compare) {
        try {
            ensure_ar(job.sink);
        } catch (const std::exception& e) {
            fail(r.baseline ? 0 : 1, std::string("AR baseline: ") + e.what());
            done();
            return;
        }
    }
    Model& ar_model = ar_model_ ? *ar_model_ : *model_;
    if (!r.reuse_cache) (r.baseline ? ar_session(slot) : session).cache().clear();
    if (r.prompt_ids) {
        if (r.baseline) run_lane(slot, job, 0, ar_session(slot), ar_model, ar_label_, r.gen);
        else run_lane(slot, job, 0, session, *model_, label, r.gen);
        done();
        return;
    }
    // A request with its own messages runs in the slot's conversation's place; slot 0 puts the
    // service's conversation back after, the others keep it (for a continuation to reuse).
    // Its messages are its history: all of them reach the model, whatever the model's default for
    // a chat (the client chose them).
    std::optional<Conversation> kept;
    const int kept_turns = session.history_turns();
    std::string prompt = r.prompt;
    if (r.messages) {
        if (slot.index == 0) kept = session.conversation();
        session.set_conversation(conversation_of(*r.messages, default_system_prompt(config().dir)));
        session.set_history_turns(-1);
        prompt = r.messages->back().content;
        r.prompt = prompt;
    }
    if (r.baseline) {  // answered by the baseline, in the same conversation
        ChatSession& ar = ar_session(slot);
        const Conversation kept_ar = ar.conversation();
        ar.set_history_turns(session.history_turns());
        ar.from_json(session.to_json());
        GenerateOptions g = r.gen;
        g.mode = DecodeMode::AR;
        run_lane(slot, job, 0, ar, ar_model, ar_label_, g);
        ar.set_conversation(kept_ar);
    } else {
        bool go_on = true;
        if (r.mode == ChatMode::Compare) {
            ChatSession& ar = ar_session(slot);
            ar.set_history_turns(session.history_turns());
            ar.from_json(session.to_json());  // the same conversation so far
            GenerateOptions g = r.gen;
            g.mode = DecodeMode::AR;
            go_on = run_lane(slot, job, 1, ar, ar_model, ar_label_, g) && !slot.cancel.load();
        }
        if (go_on) {
            GenerateOptions g = r.gen;
            if (r.mode == ChatMode::Compare) g.mode = DecodeMode::Diffusion, g.time_pass_costs = true;  // the bound beside the speedup
            run_lane(slot, job, 0, session, *model_, label, g);
        }
    }
    if (r.messages) {
        slot.last.clear();
        for (const ChatMessage& m : *r.messages) slot.last.emplace_back(m.role, m.content);
        if (!session.messages().empty() && session.messages().back().role == "assistant")
            slot.last.emplace_back("assistant", session.messages().back().content);
    }
    if (kept) session.set_conversation(std::move(*kept));
    session.set_history_turns(kept_turns);
    done();
}

bool ChatService::run_lane(Slot& slot, Job& job, int lane, ChatSession& session, Model& model, const std::string& label,
                           GenerateOptions g) {
    const ChatRequest& r = job.req;
    ChatEvent start;
    start.kind = ChatEvent::Kind::LaneStarted;
    start.request = job.id;
    start.lane = lane;
    start.model = &model;
    start.text = label;
    job.sink(std::move(start));

    g.group = &model == model_.get() ? group_.get() : ar_group_.get();
    TextStream text(model.has_tokenizer() ? &model.tokenizer() : nullptr, stop_tokens_of(model.config(), g));
    auto on_event = [&](const DecodeEvent& ev) {
        ChatEvent e;
        e.kind = ChatEvent::Kind::Decode;
        e.request = job.id;
        e.lane = lane;
        e.decode = ev;
        e.text = text.on_event(ev);
        job.sink(std::move(e));
        if (r.step_delay_ms > 0 && ev.type == DecodeEvent::Type::Step) pause_ms(r.step_delay_ms, slot.cancel);
    };
    ChatEvent fin;
    fin.kind = ChatEvent::Kind::LaneFinished;
    fin.request = job.id;
    fin.lane = lane;
    try {
        auto result = std::make_shared<GenerateResult>();
        if (r.prompt_ids) {
            *result = generate(model, session.cache(), *r.prompt_ids, g, on_event, &slot.cancel);
            fin.text = model.has_tokenizer() ? model.tokenizer().decode(result->tokens, true) : "";
        } else {
            *result = session.reply(r.prompt, g, on_event, &slot.cancel);
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

void ChatService::load_baseline() {
    ensure_ar([](ChatEvent&&) {});
}

std::string ChatService::baseline_name() const {
    std::lock_guard<std::mutex> lk(const_cast<std::mutex&>(ar_mu_));
    return ar_model_ ? ar_model_->config().name : ar_ready_ ? config().name : "";
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
        s.set_history_turns(-1);
        return int64_t(s.prompt_with(r.messages->back().content).size());
    }
    {
        std::lock_guard<std::mutex> lk(conv_mu_);
        s.set_conversation(conversation().conversation());
        s.set_history_turns(conversation().history_turns());
    }
    return int64_t(s.prompt_with(r.prompt).size());
}

// Finds or loads the AR baseline: ar_model_dir, else demo-ar beside the chat model, else the chat
// model itself decoded autoregressively. Runs on a worker (a baseline takes seconds to load) or
// at a server's start.
void ChatService::ensure_ar(const ChatEventSink& sink) {
    std::lock_guard<std::mutex> lk(ar_mu_);
    if (ar_ready_) return;
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
        ar_label_ = config().name + " · AR decoding (no AR model found: same weights)";
        ar_ready_ = true;
        return;
    }
    info("loading the AR baseline " + dir + " …");
    LoadOptions lo;
    lo.weight_type = opts_.weight_type;
    const double t0 = now_seconds();
    lo.progress = load_progress([&](const std::string& text) { info("loading the AR baseline " + dir + " … " + text); });
    ar_model_ = Model::load(dir, lo);
    if (slots_.size() > 1) ar_group_ = std::make_unique<ForwardGroup>(*ar_model_);
    // replaces the "loading" status line, which would otherwise stay up for its usual time
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", now_seconds() - t0);
    info("loaded the AR baseline " + ar_model_->config().name + " in " + secs + " s");
    ar_label_ = ar_model_->config().name + " · AR baseline";
    ar_ready_ = true;
}

// ---------------------------------------------------------------------------------------------
// The conversation

void ChatService::require_idle(const char* what) const {
    if (busy()) throw Error(std::string("wait for the answer to finish before ") + what);
}

std::string ChatService::system() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return conversation().system();
}

void ChatService::set_system(const std::string& text) {
    require_idle("changing the system prompt");
    std::lock_guard<std::mutex> lk(conv_mu_);
    conversation().set_system(text);
}

int ChatService::history_turns() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return conversation().history_turns();
}

void ChatService::set_history_turns(int n) {
    require_idle("changing the history");
    std::lock_guard<std::mutex> lk(conv_mu_);
    conversation().set_history_turns(n);
}

void ChatService::clear() {
    require_idle("clearing the conversation");
    std::lock_guard<std::mutex> lk(conv_mu_);
    conversation().clear();
}

std::vector<ChatMessage> ChatService::messages() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return conversation().messages();
}

nlohmann::json ChatService::to_json() const {
    std::lock_guard<std::mutex> lk(conv_mu_);
    return conversation().to_json();
}

void ChatService::from_json(const nlohmann::json& j) {
    require_idle("loading a conversation");
    std::lock_guard<std::mutex> lk(conv_mu_);
    conversation().from_json(j);
}

}  // namespace fdl
