#include "engine/parallel/thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/parallel/cpu_cores.h"

namespace fdl {
namespace {

// An idle worker spins this long, then sleeps: within a pass the serial steps between two
// matrices take microseconds and between the passes of a request tens of them, so spinning
// covers both; between requests the workers sleep. It does not yield while it spins: with a
// busy program beside it on a 2-core machine, yielding handed that program the core for a whole
// time slice, and passes fell to one thread's speed (measured).
// Counted in pause instructions (about 25 ns each on this Zen 4 VM: 40,000 is about 1 ms), not
// in wall time, so a worker the OS paused mid-spin does not fall asleep the moment it runs
// again (then every job would pay a futex wake).
constexpr int kSpinBeforeSleep = 40000;
// A caller whose last chunk is held by a thread the OS took off its core yields after about 200 us.
constexpr int kSpinBeforeYield = 8000;

// The claim word: job generation (high 32 bits), chunk count (16 bits), next unclaimed chunk
// (16 bits). One atomic, so a late worker can never claim a chunk of a job that has moved on.
constexpr uint64_t kMaxChunks = 0xFFFF;
inline uint32_t gen_of(uint64_t w) { return uint32_t(w >> 32); }
inline uint32_t count_of(uint64_t w) { return uint32_t(w >> 16) & 0xFFFF; }
inline uint32_t next_of(uint64_t w) { return uint32_t(w) & 0xFFFF; }

thread_local bool t_in_job = false;  // a chunk calling parallel_chunks runs it serially
thread_local int t_worker = 0;       // this thread's worker index (0: any calling thread)

class Pool {
   public:
    ~Pool() { resize(1); }

    int threads() {
        const int n = nthreads_.load(std::memory_order_acquire);
        if (n > 0 || t_in_job) return n > 0 ? n : 1;
        std::lock_guard<std::mutex> lk(submit_);
        if (nthreads_.load() == 0) resize_locked(physical_cores());
        return nthreads_.load();
    }

    void resize(int n) {
        std::lock_guard<std::mutex> lk(submit_);
        resize_locked(n);
    }

    void run(int chunks, void (*body)(void*, int, int), void* ctx) {
        std::lock_guard<std::mutex> lk(submit_);
        if (nthreads_.load() == 0) resize_locked(physical_cores());
        if (nthreads_.load() == 1 || uint64_t(chunks) > kMaxChunks) {
            t_in_job = true;
            for (int c = 0; c < chunks; c++) body(ctx, c, 0);
            t_in_job = false;
            return;
        }
        body_ = body;
        ctx_ = ctx;
        done_.store(0, std::memory_order_relaxed);
        gen_++;
        claim_.store((uint64_t(gen_) << 32) | (uint64_t(chunks) << 16), std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> g(sleep_m_);
            sleep_cv_.notify_all();
        }
        t_in_job = true;
        work(gen_, 0);
        t_in_job = false;
        // Wait for chunks that workers still hold.
        for (int i = 0; done_.load(std::memory_order_acquire) != chunks; i++) {
            if (i < kSpinBeforeYield) _mm_pause();
            else sched_yield();
        }
    }

   private:
    // Claims and runs chunks of job `gen` until none is left (or the job is gone).
    void work(uint32_t gen, int worker) {
        uint64_t w = claim_.load(std::memory_order_acquire);
        for (;;) {
            if (gen_of(w) != gen || next_of(w) >= count_of(w)) return;
            if (!claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                continue;
            body_(ctx_, int(next_of(w)), worker);
            done_.fetch_add(1, std::memory_order_release);
            w = claim_.load(std::memory_order_acquire);
        }
    }

    // `seen` is the generation when the worker was made, not when its thread first runs: a thread
    // that starts late must still notice every job and stop published after its creation.
    void worker_loop(int worker, uint32_t seen) {
        t_in_job = true;
        t_worker = worker;
        for (;;) {
            uint32_t g;
            for (int i = 0;; i++) {
                g = gen_of(claim_.load(std::memory_order_acquire));
                if (g != seen) break;
                if (i < kSpinBeforeSleep) _mm_pause();
                else {
                    std::unique_lock<std::mutex> lk(sleep_m_);
                    sleepers_.fetch_add(1, std::memory_order_seq_cst);
                    sleep_cv_.wait(lk, [&] { return gen_of(claim_.load(std::memory_order_seq_cst)) != seen; });
                    sleepers_.fetch_sub(1, std::memory_order_relaxed);
                    i = 0;
                }
            }
            seen = g;
            if (stop_.load(std::memory_order_acquire)) return;
            work(g, worker);
        }
    }

    void resize_locked(int n) {
        if (n < 1) n = 1;
        if (n == nthreads_.load()) return;
        if (!workers_.empty()) {
            stop_.store(true, std::memory_order_release);
            gen_++;
            claim_.store(uint64_t(gen_) << 32, std::memory_order_seq_cst);
            {
                std::lock_guard<std::mutex> g(sleep_m_);
                sleep_cv_.notify_all();
            }
            for (auto& t : workers_) t.join();
            workers_.clear();
            stop_.store(false, std::memory_order_release);
        }
        for (int i = 1; i < n; i++) workers_.emplace_back([this, i, g = gen_] { worker_loop(i, g); });
        nthreads_.store(n, std::memory_order_release);
    }

    std::mutex submit_;  // one job (or resize) at a time
    std::atomic<int> nthreads_{0};  // 0 until first used or set; changed under submit_
    uint32_t gen_ = 0;   // written under submit_ only
    std::vector<std::thread> workers_;
    void (*body_)(void*, int, int) = nullptr;
    void* ctx_ = nullptr;
    alignas(64) std::atomic<uint64_t> claim_{0};
    alignas(64) std::atomic<int> done_{0};
    alignas(64) std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::mutex sleep_m_;
    std::condition_variable sleep_cv_;
};

Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace

void set_pool_threads(int n) { pool().resize(n <= 0 ? physical_cores() : n); }
int pool_threads() { return pool().threads(); }

int balanced_grain(int n) {
    const int per = 4 * pool_threads();
    return n <= per ? 1 : (n + per - 1) / per;
}

namespace detail {
void run_chunks(int chunks, void (*body)(void*, int, int), void* ctx) {
    if (t_in_job) {
        for (int c = 0; c < chunks; c++) body(ctx, c, t_worker);
        return;
    }
    pool().run(chunks, body, ctx);
}
}  // namespace detail

}  // namespace fdl
