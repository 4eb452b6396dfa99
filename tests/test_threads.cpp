// Decoding on a worker thread, the way the chat runs it: the worker streams DecodeEvents into a
// mutex-protected queue, the main thread drains it and cancels through the atomic flag. The
// answer must end cleanly (cancelled or finished), the last event must say so, and the cache a
// cancelled request leaves behind must serve the next request exactly like a fresh one.
// scripts/sanitize.sh runs these under ThreadSanitizer (with OMP_NUM_THREADS=1).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "engine/decode/generate.h"

using namespace fdl;

namespace {

const std::unique_ptr<Model>& tiny() {
    static std::unique_ptr<Model> m = Model::load(FIXTURES_DIR "/tiny/model");
    return m;
}

std::vector<int32_t> chat_prompt(const std::string& text) {
    return tiny()->tokenizer().encode("<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n");
}

GenerateOptions long_answer(DecodeMode mode) {
    GenerateOptions o;
    o.mode = mode;
    o.max_new_tokens = 512;
    o.block_size = 32;
    o.sub_block_size = 8;
    o.threshold = 1.0f;         // one cell per pass: many events
    o.stop_tokens = {1 << 30};  // never produced: the answer runs until cancelled or done
    return o;
}

// A request on a worker thread; the calling thread drains its events and may cancel it.
struct WorkerRun {
    std::mutex mu;
    std::deque<DecodeEvent> queue;
    std::atomic<bool> cancel{false};
    std::atomic<bool> done{false};
    GenerateResult result;
    std::string error;
    std::vector<DecodeEvent> seen;  // drained events, in order (main thread only)

    // Runs generate() on a thread; cancels after `cancel_after_steps` Step events (-1: never).
    void run(KVCache& cache, const std::vector<int32_t>& prompt, const GenerateOptions& o, int cancel_after_steps) {
        std::thread worker([&] {
            try {
                int pushed = 0;
                result = generate(*tiny(), cache, prompt, o, [&](const DecodeEvent& e) {
                    {
                        std::lock_guard<std::mutex> lk(mu);
                        queue.push_back(e);
                    }
                    // Past the cancel point, wait for the main thread (at most 20 s): the test
                    // must not depend on which thread the scheduler favours.
                    if (e.type == DecodeEvent::Type::Step && ++pushed >= cancel_after_steps && cancel_after_steps >= 0)
                        for (int i = 0; i < 100000 && !cancel.load(); i++) std::this_thread::sleep_for(std::chrono::microseconds(200));
                }, &cancel);
            } catch (const std::exception& e) {
                error = e.what();
            }
            done.store(true);
        });
        int steps = 0;
        auto drain = [&] {
            std::deque<DecodeEvent> got;
            {
                std::lock_guard<std::mutex> lk(mu);
                got.swap(queue);
            }
            for (auto& e : got) {
                if (e.type == DecodeEvent::Type::Step) steps++;
                seen.push_back(std::move(e));
            }
        };
        while (!done.load()) {
            drain();
            if (cancel_after_steps >= 0 && steps >= cancel_after_steps) cancel.store(true);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        worker.join();
        drain();
    }
};

}  // namespace

class ThreadsCancel : public ::testing::TestWithParam<DecodeMode> {};

TEST_P(ThreadsCancel, CancelFromMainThreadEndsCleanly) {
    KVCache cache = tiny()->make_cache();
    const auto prompt = chat_prompt("Tell me a long story.");
    const GenerateOptions o = long_answer(GetParam());
    WorkerRun w;
    w.run(cache, prompt, o, 3);
    ASSERT_EQ(w.error, "");
    EXPECT_TRUE(w.result.cancelled);
    EXPECT_FALSE(w.result.stopped);
    EXPECT_LT(int(w.result.tokens.size()), o.max_new_tokens);
    ASSERT_FALSE(w.seen.empty());
    EXPECT_EQ(w.seen.front().type, DecodeEvent::Type::Started);
    EXPECT_EQ(w.seen.back().type, DecodeEvent::Type::Finished);
    EXPECT_TRUE(w.seen.back().cancelled);
    for (size_t i = 0; i + 1 < w.seen.size(); i++) EXPECT_NE(w.seen[i].type, DecodeEvent::Type::Finished);
    for (int32_t t : w.result.tokens) EXPECT_TRUE(t >= 0 && t < tiny()->config().vocab_size);
}

TEST_P(ThreadsCancel, CacheLeftByACancelledRequestServesTheNextOneExactly) {
    KVCache cache = tiny()->make_cache();
    const auto prompt = chat_prompt("Count to ten.");
    GenerateOptions o = long_answer(GetParam());
    WorkerRun first;
    first.run(cache, prompt, o, 2);
    ASSERT_EQ(first.error, "");
    ASSERT_TRUE(first.result.cancelled);

    o.max_new_tokens = 64;
    WorkerRun second;
    second.run(cache, prompt, o, -1);  // same cache, not cancelled
    ASSERT_EQ(second.error, "");
    EXPECT_FALSE(second.result.cancelled);

    KVCache fresh = tiny()->make_cache();
    const GenerateResult want = generate(*tiny(), fresh, prompt, o);
    EXPECT_EQ(second.result.tokens, want.tokens);
    EXPECT_EQ(second.seen.back().type, DecodeEvent::Type::Finished);
    EXPECT_FALSE(second.seen.back().cancelled);
}

TEST_P(ThreadsCancel, CancelledBeforeTheFirstPass) {
    KVCache cache = tiny()->make_cache();
    WorkerRun w;
    w.cancel.store(true);
    w.run(cache, chat_prompt("hi"), long_answer(GetParam()), -1);
    ASSERT_EQ(w.error, "");
    EXPECT_TRUE(w.result.cancelled);
    EXPECT_EQ(w.seen.back().type, DecodeEvent::Type::Finished);
}

INSTANTIATE_TEST_SUITE_P(Modes, ThreadsCancel, ::testing::Values(DecodeMode::Diffusion, DecodeMode::AR),
                         [](const auto& info) { return std::string(decode_mode_name(info.param)); });

// The chat's own path: ChatSession::reply on the worker, cancelled; the partial answer is kept
// and the conversation goes on.
TEST(ThreadsChat, CancelledReplyOnWorkerKeepsThePartialAnswer) {
    ChatSession s(*tiny());
    std::atomic<bool> cancel{false};
    std::mutex mu;
    std::deque<DecodeEvent> q;
    std::atomic<int> steps{0};
    std::atomic<bool> finished{false};
    GenerateResult r;
    std::string error;
    std::thread worker([&] {
        try {
        r = s.reply("Tell me everything.", long_answer(DecodeMode::Diffusion), [&](const DecodeEvent& e) {
            {
                std::lock_guard<std::mutex> lk(mu);
                q.push_back(e);
            }
            if (e.type == DecodeEvent::Type::Step && ++steps >= 2)
                for (int i = 0; i < 100000 && !cancel.load(); i++) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }, &cancel);
        } catch (const std::exception& e) {
            error = e.what();
        }
        finished.store(true);
    });
    while (steps.load() < 2 && !finished.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
    cancel.store(true);
    worker.join();
    ASSERT_EQ(error, "");
    EXPECT_TRUE(r.cancelled);
    ASSERT_EQ(s.messages().size(), 2u);
    EXPECT_EQ(s.messages()[1].role, "assistant");
    {
        std::lock_guard<std::mutex> lk(mu);
        ASSERT_FALSE(q.empty());
        EXPECT_EQ(q.back().type, DecodeEvent::Type::Finished);
    }
    GenerateOptions o = long_answer(DecodeMode::Diffusion);
    o.max_new_tokens = 32;
    std::thread again([&] { r = s.reply("And then?", o); });
    again.join();
    EXPECT_FALSE(r.cancelled);
    EXPECT_EQ(s.messages().size(), 4u);
}
