// Batched forward passes: several sequences' passes run as one (Model::forward_batch) give each
// sequence the logits and K/V of its own pass, ForwardGroup lets concurrent decoders share passes
// and still decode what they decode alone, and the chat service's parallel slots answer
// concurrent requests as a single slot answers them one by one.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <thread>

#include "engine/chat/chat_service.h"
#include "engine/decode/generate.h"
#include "engine/io/error.h"
#include "engine/model/forward_group.h"

using namespace fdl;

namespace {

const std::string kDemo = SOURCE_DIR "/assets/models/demo-dllm";

// The largest difference between two float arrays, relative to the largest magnitude of `want`.
double rel_diff(const float* got, const float* want, size_t n) {
    double d = 0, m = 1e-12;
    for (size_t i = 0; i < n; i++) {
        d = std::max(d, double(std::fabs(got[i] - want[i])));
        m = std::max(m, double(std::fabs(want[i])));
    }
    return d / m;
}

std::vector<int32_t> tokens(int n, int seed, int vocab) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) t[size_t(i)] = (seed * 7919 + i * 104729) % (vocab - 10) + 1;
    return t;
}

}  // namespace

TEST(ForwardBatch, EachSequenceGetsItsOwnPassResults) {
    for (const char* dir : {FIXTURES_DIR "/tiny/model", kDemo.c_str()}) {
        LoadOptions lo;
        lo.load_tokenizer = false;
        auto model = Model::load(dir, lo);
        const int V = model->config().vocab_size;
        // Three sequences, as a server would batch them: one decoding a token after a 40-token
        // prompt, one running a 32-token block-causal block pass, one prefilling 17 tokens.
        const std::vector<int32_t> a = tokens(41, 1, V), b = tokens(64, 2, V), c = tokens(17, 3, V);
        std::vector<KVCache> solo(3, model->make_cache()), batched(3, model->make_cache());
        for (auto* set : {&solo, &batched})
            for (auto& k : *set) k.reserve(128);
        // The history each sequence attends to, computed alone in both sets.
        Pass ha{a.data(), 40, 0, 40, AttnMask::Causal, 0, 0, 0};
        Pass hb{b.data(), 32, 0, 32, AttnMask::BlockCausal, 32, 0, 0};
        for (auto* set : {&solo, &batched}) {
            model->forward((*set)[0], ha, nullptr);
            model->forward((*set)[1], hb, nullptr);
        }
        const std::vector<Pass> passes = {
            {a.data() + 40, 1, 40, 41, AttnMask::Causal, 0, 0, 1},
            {b.data() + 32, 32, 32, 64, AttnMask::BlockCausal, 32, 0, 32},
            {c.data(), 17, 0, 17, AttnMask::Causal, 0, 16, 1},
        };
        std::vector<std::vector<float>> want(3), got(3);
        for (size_t k = 0; k < 3; k++) {
            want[k].resize(size_t(passes[k].logits_count) * V);
            got[k].resize(want[k].size());
            model->forward(solo[k], passes[k], want[k].data());
        }
        std::vector<SeqPass> seqs;
        for (size_t k = 0; k < 3; k++) seqs.push_back({&batched[k], passes[k], got[k].data()});
        model->forward_batch(seqs);
        for (size_t k = 0; k < 3; k++) {
            EXPECT_LT(rel_diff(got[k].data(), want[k].data(), want[k].size()), 2e-3) << dir << " sequence " << k;
            const Pass& p = passes[k];
            for (int l = 0; l < model->config().num_layers; l++)
                EXPECT_LT(rel_diff(batched[k].k_row(l, p.pos0), solo[k].k_row(l, p.pos0), size_t(p.n) * solo[k].kv_dim), 2e-3)
                    << dir << " sequence " << k << " layer " << l;
        }
        // A bad pass is refused before anything runs.
        Pass bad = passes[0];
        bad.attend_len = 1 << 20;
        EXPECT_THROW(model->check_pass(batched[0], bad), Error);
    }
}

TEST(ForwardBatch, GroupedDecodersDecodeWhatTheyDecodeAlone) {
    auto model = Model::load(kDemo);
    const std::vector<std::string> prompts = {"What is 12 + 30?", "Spell the word garden.", "Reverse the word table.",
                                              "Sort these numbers: 5, 3, 9."};
    auto options = [](DecodeMode m) {
        GenerateOptions o;
        o.mode = m;
        o.max_new_tokens = 64;
        o.record_steps = false;
        return o;
    };
    for (DecodeMode mode : {DecodeMode::AR, DecodeMode::Diffusion}) {
        std::vector<std::vector<int32_t>> alone, together(prompts.size());
        for (const std::string& p : prompts) {
            KVCache cache = model->make_cache();
            alone.push_back(generate(*model, cache, model->tokenizer().encode(p), options(mode)).tokens);
        }
        ForwardGroup group(*model);
        std::vector<std::thread> threads;
        int passes = 0;
        std::mutex mu;
        for (size_t k = 0; k < prompts.size(); k++)
            threads.emplace_back([&, k] {
                KVCache cache = model->make_cache();
                GenerateOptions o = options(mode);
                o.group = &group;
                GenerateResult r = generate(*model, cache, model->tokenizer().encode(prompts[k]), o);
                together[k] = r.tokens;
                std::lock_guard<std::mutex> lk(mu);
                passes += r.stats.nfe;
            });
        for (auto& t : threads) t.join();
        for (size_t k = 0; k < prompts.size(); k++) EXPECT_EQ(together[k], alone[k]) << decode_mode_name(mode) << " " << k;
        EXPECT_EQ(group.sequences(), uint64_t(passes));  // every pass ran, once
        EXPECT_LT(group.batches(), uint64_t(passes));    // and passes were shared
    }
}

TEST(ForwardBatch, ParallelSlotsAnswerAsOneSlotDoes) {
    ChatServiceOptions so;
    so.model_dir = kDemo;
    ChatService one(so);
    so.parallel = 3;
    ChatService three(so);
    const std::vector<std::string> prompts = {"What is 7 + 8?", "Spell the word house.", "Reverse the word lamp.",
                                              "What is 20 - 6?", "Spell the word river."};
    auto request = [](const std::string& p) {
        ChatRequest r;
        r.messages = std::vector<ChatMessage>{{"user", p, {}}};
        r.gen.mode = DecodeMode::Diffusion;
        r.gen.max_new_tokens = 64;
        r.gen.record_steps = false;
        return r;
    };
    auto answer = [](ChatEventQueue& q) {
        std::string text;
        for (ChatEvent e; q.wait_next(e, 60);) {
            if (e.kind == ChatEvent::Kind::LaneFinished) text = e.error.empty() ? e.text : "error: " + e.error;
            if (e.kind == ChatEvent::Kind::Done) break;
        }
        return text;
    };
    std::vector<std::string> want;
    for (const std::string& p : prompts) {
        ChatEventQueue q;
        one.submit(request(p), q.sink());
        want.push_back(answer(q));
    }
    std::vector<ChatEventQueue> queues(prompts.size());
    for (size_t k = 0; k < prompts.size(); k++) three.submit(request(prompts[k]), queues[k].sink());
    for (size_t k = 0; k < prompts.size(); k++) EXPECT_EQ(answer(queues[k]), want[k]) << prompts[k];

    // A continued conversation goes back to the slot that holds its prefix: three requests at once
    // take slots 0, 1 and 2; the third one's continuation, sent when all are free, must go to slot
    // 2 to find its prefix in the cache (AR, which reuses it token by token).
    std::vector<ChatEventQueue> burst(3);
    for (size_t k = 0; k < 3; k++) {
        ChatRequest r = request(prompts[k]);
        r.gen.mode = DecodeMode::AR;
        three.submit(r, burst[k].sink());
    }
    std::vector<std::string> replies;
    for (auto& bq : burst) replies.push_back(answer(bq));
    three.wait_idle();
    ChatRequest next = request(prompts[2]);
    next.gen.mode = DecodeMode::AR;
    next.messages->push_back({"assistant", replies[2], {}});
    next.messages->push_back({"user", "Spell the word table.", {}});
    ChatEventQueue q;
    three.submit(next, q.sink());
    int reused = -1, prompt_tokens = 0;
    for (ChatEvent e; q.wait_next(e, 60);) {
        if (e.kind == ChatEvent::Kind::LaneFinished && e.result)
            reused = e.result->stats.reused_tokens, prompt_tokens = e.result->stats.prompt_tokens;
        if (e.kind == ChatEvent::Kind::Done) break;
    }
    EXPECT_GT(reused, prompt_tokens / 2) << prompt_tokens;
    EXPECT_TRUE(three.messages().empty());  // the conversation was never touched
}
