// Forward passes shared by several sequences decoded at once, each by its own thread (the chat
// service's slots). A thread that joined the group hands its pass to forward() and waits; once
// every member has a pass waiting (or has left), one of them runs them all as one batch
// (Model::forward_batch: the rows stacked into one GEMM per matrix, attention per sequence) and
// all of them go on. A one-token pass is bound by reading the weights, so four AR sequences
// decoded this way cost little more than one.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "engine/model/model.h"

namespace fdl {

class ForwardGroup {
public:
    explicit ForwardGroup(Model& model) : model_(model) {}
    // This thread's sequence takes part from now on / no longer (its decoding is over).
    void join();
    void leave();
    // Runs this thread's pass together with the other members' (see Model::forward).
    void forward(KVCache& cache, const Pass& pass, float* logits);

    // Passes run so far and the sequences they held, for tests and statistics.
    uint64_t batches() const;
    uint64_t sequences() const;

private:
    struct Waiting {
        SeqPass pass;
        bool done = false;
        std::exception_ptr error;
    };
    Model& model_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    int members_ = 0;
    bool running_ = false;
    std::vector<Waiting*> waiting_;
    uint64_t batches_ = 0, sequences_ = 0;
    void run_ready(std::unique_lock<std::mutex>& lk);
};

// Joins a group for a scope (nothing when the group is null).
class ForwardGroupMember {
public:
    explicit ForwardGroupMember(ForwardGroup* g) : g_(g) {
        if (g_) g_->join();
    }
    ~ForwardGroupMember() {
        if (g_) g_->leave();
    }
    ForwardGroupMember(const ForwardGroupMember&) = delete;
    ForwardGroupMember& operator=(const ForwardGroupMember&) = delete;

private:
    ForwardGroup* g_;
};

}  // namespace fdl
