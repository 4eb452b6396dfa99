#include "engine/model/forward_group.h"

namespace fdl {

void ForwardGroup::join() {
    std::lock_guard<std::mutex> lk(mu_);
    members_++;
}

void ForwardGroup::leave() {
    std::unique_lock<std::mutex> lk(mu_);
    members_--;
    // The members still waiting may now be all there are: one of them runs the batch.
    cv_.notify_all();
}

// Runs every waiting pass when each member has one waiting and no batch is running. Called with
// the lock held; releases it while the model works.
void ForwardGroup::run_ready(std::unique_lock<std::mutex>& lk) {
    if (running_ || waiting_.empty() || int(waiting_.size()) < members_) return;
    running_ = true;
    std::vector<Waiting*> batch;
    batch.swap(waiting_);
    lk.unlock();
    std::vector<SeqPass> passes;
    for (Waiting* w : batch) passes.push_back(w->pass);
    std::exception_ptr error;
    try {
        model_.forward_batch(passes);
    } catch (...) {
        error = std::current_exception();
    }
    lk.lock();
    for (Waiting* w : batch) {
        w->done = true;
        w->error = error;
    }
    batches_++;
    sequences_ += batch.size();
    running_ = false;
    cv_.notify_all();
}

void ForwardGroup::forward(KVCache& cache, const Pass& pass, float* logits) {
    model_.check_pass(cache, pass);  // a bad pass fails alone, not the batch it would join
    Waiting w;
    w.pass = {&cache, pass, logits};
    std::unique_lock<std::mutex> lk(mu_);
    waiting_.push_back(&w);
    for (;;) {
        run_ready(lk);
        if (w.done) break;
        cv_.wait(lk);
    }
    if (w.error) std::rethrow_exception(w.error);
}

uint64_t ForwardGroup::batches() const {
    std::lock_guard<std::mutex> lk(mu_);
    return batches_;
}

uint64_t ForwardGroup::sequences() const {
    std::lock_guard<std::mutex> lk(mu_);
    return sequences_;
}

}  // namespace fdl
