// The engine's worker pool (engine/thread_pool.h): every chunk runs exactly once, worker ids are
// distinct among chunks running at the same time, nesting and concurrent callers are safe, and
// chunks are claimed dynamically (a held-up thread's share is taken by the others). The suite's
// name matches scripts/sanitize.sh's TSan filter ('Thread').
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/parallel/thread_pool.h"
#include "engine/parallel/threads.h"

using namespace fdl;

namespace {

struct RestoreThreads {
    ~RestoreThreads() { set_threads(0); }
};

}  // namespace

TEST(ThreadPool, EveryChunkOnceAtEveryThreadCount) {
    RestoreThreads restore;
    for (int threads : {1, 2, 3, 4}) {
        set_threads(threads);
        ASSERT_EQ(pool_threads(), threads);
        for (int chunks : {1, 2, 3, 7, 64, 1000, 65535, 70000}) {
            std::vector<std::atomic<int>> hits(chunks);
            std::atomic<int> bad_worker{0};
            parallel_chunks(chunks, true, [&](int c, int worker) {
                hits[c].fetch_add(1, std::memory_order_relaxed);
                if (worker < 0 || worker >= threads) bad_worker.fetch_add(1);
            });
            for (int c = 0; c < chunks; c++) ASSERT_EQ(hits[c].load(), 1) << threads << " threads, chunk " << c;
            EXPECT_EQ(bad_worker.load(), 0);
        }
    }
}

TEST(ThreadPool, RangesCoverExactlyOnce) {
    RestoreThreads restore;
    set_threads(3);
    for (int n : {1, 5, 16, 17, 1001}) {
        for (int grain : {1, 4, 7, 5000}) {
            std::vector<std::atomic<int>> hits(n);
            parallel_ranges(n, grain, true, [&](int i0, int i1, int) {
                EXPECT_LE(i1 - i0, grain);
                for (int i = i0; i < i1; i++) hits[i].fetch_add(1);
            });
            for (int i = 0; i < n; i++) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " grain " << grain << " i " << i;
        }
    }
}

// Scratch indexed by worker must never be shared by two chunks running at once.
TEST(ThreadPool, ConcurrentChunksHaveDistinctWorkers) {
    RestoreThreads restore;
    set_threads(4);
    std::vector<std::atomic<int>> busy(4);
    std::atomic<int> clashes{0};
    for (int rep = 0; rep < 50; rep++) {
        parallel_chunks(64, true, [&](int, int worker) {
            if (busy[worker].fetch_add(1) != 0) clashes.fetch_add(1);
            std::atomic<int> spin{0};
            while (spin.fetch_add(1, std::memory_order_relaxed) < 2000) {
            }
            busy[worker].fetch_sub(1);
        });
    }
    EXPECT_EQ(clashes.load(), 0);
}

TEST(ThreadPool, SerialWhenNotParallelAndWhenNested) {
    RestoreThreads restore;
    set_threads(2);
    const auto caller = std::this_thread::get_id();
    bool off_caller = false;
    parallel_chunks(10, false, [&](int, int worker) {
        off_caller |= std::this_thread::get_id() != caller || worker != 0;
    });
    EXPECT_FALSE(off_caller);
    // A chunk that starts another job runs it on its own thread (no deadlock, every inner chunk once).
    std::vector<std::atomic<int>> hits(8 * 16);
    parallel_chunks(8, true, [&](int outer, int) {
        const auto me = std::this_thread::get_id();
        parallel_chunks(16, true, [&](int inner, int) {
            EXPECT_EQ(std::this_thread::get_id(), me);
            hits[outer * 16 + inner].fetch_add(1);
        });
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

// Chunk 0 waits until every other chunk is done: only dynamic claiming can finish this job (a
// static split would leave the waiting thread's share undone). A timeout turns a hang into a failure.
TEST(ThreadPool, OthersTakeTheShareOfAHeldUpThread) {
    RestoreThreads restore;
    for (int threads : {2, 4}) {
        set_threads(threads);
        const int chunks = 200;
        std::atomic<int> done{0};
        std::atomic<bool> timed_out{false};
        parallel_chunks(chunks, true, [&](int c, int) {
            if (c == 0) {
                const auto t0 = std::chrono::steady_clock::now();
                while (done.load() < chunks - 1) {
                    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(20)) {
                        timed_out = true;
                        break;
                    }
                    std::this_thread::yield();
                }
            }
            done.fetch_add(1);
        });
        EXPECT_FALSE(timed_out.load()) << threads << " threads";
        EXPECT_EQ(done.load(), chunks);
    }
}

TEST(ThreadPool, ConcurrentCallersAndResizes) {
    RestoreThreads restore;
    set_threads(2);
    std::atomic<long> total{0};
    auto caller = [&] {
        for (int rep = 0; rep < 200; rep++)
            parallel_ranges(100, 3, true, [&](int i0, int i1, int) {
                for (int i = i0; i < i1; i++) total.fetch_add(i);
            });
    };
    std::thread a(caller), b(caller);
    for (int n : {3, 1, 2}) set_threads(n);  // between jobs of the callers above
    a.join();
    b.join();
    EXPECT_EQ(total.load(), 2L * 200 * (99 * 100 / 2));
}

// Idle workers go to sleep and wake for the next job.
TEST(ThreadPool, WakesAfterSleeping) {
    RestoreThreads restore;
    set_threads(2);
    std::atomic<int> hits{0};
    for (int rep = 0; rep < 3; rep++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // past the 1 ms spin before sleeping
        parallel_chunks(32, true, [&](int, int) { hits.fetch_add(1); });
    }
    EXPECT_EQ(hits.load(), 96);
}

// A whole forward pass gives bit-identical logits at every thread count: every chunk of every job
// (matrix panels, attention tiles, the row-wise steps between them) computes its own outputs.
// On the demo model, whose rows are wide enough for the row-wise steps to run in parallel; bf16,
// int8 and int4 (f32 may go through OpenBLAS on CPUs without AVX-512).
TEST(ThreadPool, ForwardPassSameAtEveryThreadCount) {
    RestoreThreads restore;
    for (WeightType dtype : {WeightType::BF16, WeightType::INT8, WeightType::INT4}) {
        LoadOptions o;
        o.weight_type = dtype;
        o.load_tokenizer = false;
        auto model = Model::load(SOURCE_DIR "/assets/models/demo-dllm", o);
        const int V = model->config().vocab_size;
        std::vector<int32_t> ids(40);
        for (int i = 0; i < 40; i++) ids[size_t(i)] = (i * 97 + 13) % (V - 8);
        auto run = [&](int threads) {
            set_threads(threads);
            KVCache cache = model->make_cache();
            cache.reserve(48);
            std::vector<float> logits(size_t(40) * V);
            std::vector<float> one(static_cast<size_t>(V));
            model->forward(cache, {ids.data(), 40, 0, 40, AttnMask::BlockCausal, 32, 0, 40}, logits.data());
            model->forward(cache, {ids.data(), 1, 40, 41, AttnMask::Causal, 0, 0, 1}, one.data());
            logits.insert(logits.end(), one.begin(), one.end());
            return logits;
        };
        const std::vector<float> ref = run(1);
        for (int threads : {2, 3}) {
            const std::vector<float> got = run(threads);
            ASSERT_EQ(got.size(), ref.size());
            EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0) << weight_type_name(dtype) << ", " << threads << " threads";
        }
    }
}
