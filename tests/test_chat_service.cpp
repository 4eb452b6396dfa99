// The chat service as its clients use it: requests from several threads answered one at a time
// in arrival order, each client's events complete and in order, cancellation of a running and of
// a queued request, compare mode's two lanes, requests with their own messages, and the
// conversation refused while busy. Answers are checked against ChatSession::reply on a model
// loaded apart (the path the service must not change).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "engine/chat/chat_service.h"
#include "engine/io/error.h"

using namespace fdl;

namespace {

constexpr int32_t kStop = 382;  // the tiny fixture's <|im_end|>

ChatServiceOptions tiny_options() {
    ChatServiceOptions o;
    o.model_dir = FIXTURES_DIR "/tiny/model";
    return o;
}

ChatRequest request(const std::string& prompt, DecodeMode mode = DecodeMode::Diffusion, int max_new = 64) {
    ChatRequest r;
    r.prompt = prompt;
    r.gen.mode = mode;
    r.gen.max_new_tokens = max_new;
    r.gen.stop_tokens = {kStop};
    r.gen.record_steps = false;
    return r;
}

// Every event of one request, in arrival order.
std::vector<ChatEvent> collect(ChatEventQueue& q) {
    std::vector<ChatEvent> out;
    for (ChatEvent e; q.wait_next(e, 60);) {
        const bool done = e.kind == ChatEvent::Kind::Done;
        out.push_back(std::move(e));
        if (done) break;
    }
    return out;
}

// Checks one lane's part of a request's events: LaneStarted, Decode (Started ... Finished),
// LaneFinished; returns the streamed text.
std::string check_lane(const std::vector<ChatEvent>& ev, size_t& i, int lane) {
    std::string text;
    EXPECT_LT(i, ev.size());
    if (i >= ev.size()) return text;
    EXPECT_EQ(ev[i].kind, ChatEvent::Kind::LaneStarted);
    EXPECT_EQ(ev[i].lane, lane);
    EXPECT_NE(ev[i].model, nullptr);
    i++;
    EXPECT_EQ(ev[i].kind, ChatEvent::Kind::Decode);
    EXPECT_EQ(ev[i].decode.type, DecodeEvent::Type::Started);
    for (; i < ev.size() && ev[i].kind == ChatEvent::Kind::Decode; i++) {
        EXPECT_EQ(ev[i].lane, lane);
        text += ev[i].text;
    }
    EXPECT_EQ(ev[i - 1].decode.type, DecodeEvent::Type::Finished);
    EXPECT_EQ(ev[i].kind, ChatEvent::Kind::LaneFinished);
    EXPECT_EQ(ev[i].lane, lane);
    i++;
    return text;
}

}  // namespace

TEST(ChatService, AnswersLikeASessionAndStreamsTheStoredText) {
    ChatService svc(tiny_options());
    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ChatSession reference(*model);
    for (const char* prompt : {"Hello there", "And again, please"}) {
        ChatEventQueue q;
        const ChatRequest r = request(prompt);
        svc.submit(r, q.sink());
        const std::vector<ChatEvent> ev = collect(q);
        const GenerateResult want = reference.reply(prompt, r.gen);
        size_t i = 0;
        const std::string streamed = check_lane(ev, i, 0);
        ASSERT_EQ(i + 1, ev.size());
        const ChatEvent& fin = ev[i - 1];
        ASSERT_TRUE(fin.error.empty()) << fin.error;
        ASSERT_TRUE(fin.result);
        EXPECT_EQ(fin.result->tokens, want.tokens);
        EXPECT_EQ(fin.text, reference.messages().back().content);
        if (want.stopped) {
            EXPECT_EQ(streamed, fin.text);  // the stream's text is the stored reply
        }
        EXPECT_EQ(ev.back().kind, ChatEvent::Kind::Done);
        EXPECT_FALSE(ev.back().cancelled);
    }
    // The conversation grew by both exchanges, and the second turn reused the first one's cache.
    EXPECT_EQ(svc.messages().size(), 4u);
    EXPECT_EQ(svc.messages()[2].content, "And again, please");
}

TEST(ChatService, RequestsFromSeveralThreadsRunOneAtATime) {
    ChatService svc(tiny_options());
    std::mutex mu;
    std::vector<uint64_t> order;  // the request of every event, as delivered
    std::map<uint64_t, int> done;
    auto sink = [&](ChatEvent&& e) {
        std::lock_guard<std::mutex> lk(mu);
        order.push_back(e.request);
        if (e.kind == ChatEvent::Kind::Done) done[e.request]++;
    };
    std::vector<std::thread> clients;
    std::vector<uint64_t> ids(6);
    for (int t = 0; t < 6; t++)
        clients.emplace_back([&, t] {
            ids[size_t(t)] = svc.submit(request("client " + std::to_string(t), t % 2 ? DecodeMode::AR : DecodeMode::Diffusion, 32), sink);
        });
    for (auto& c : clients) c.join();
    svc.wait_idle();
    EXPECT_FALSE(svc.busy());
    // Read the service before taking the sink's lock: the service calls sinks holding its own.
    const size_t messages = svc.messages().size();
    std::lock_guard<std::mutex> lk(mu);
    ASSERT_EQ(done.size(), 6u);
    for (auto& [id, n] : done) EXPECT_EQ(n, 1) << id;
    // Each request's events form one contiguous run: nothing of two answers interleaves.
    std::vector<uint64_t> runs;
    for (uint64_t id : order)
        if (runs.empty() || runs.back() != id) runs.push_back(id);
    EXPECT_EQ(runs.size(), 6u);
    std::sort(ids.begin(), ids.end());
    EXPECT_TRUE(std::adjacent_find(ids.begin(), ids.end()) == ids.end());  // ids are unique
    EXPECT_EQ(messages, 12u);
}

TEST(ChatService, CancelsTheRunningRequestAndDropsAQueuedOne) {
    ChatService svc(tiny_options());
    ChatEventQueue first, second, third;
    ChatRequest slow = request("Tell me everything.", DecodeMode::AR, 512);
    slow.gen.stop_tokens = {-1};  // never stops by itself
    slow.step_delay_ms = 20;
    const uint64_t a = svc.submit(slow, first.sink());
    const uint64_t b = svc.submit(request("never answered"), second.sink());
    svc.submit(request("answered after"), third.sink());
    // Wait for the first answer's second step, then cancel it, and the queued one.
    int steps = 0;
    for (ChatEvent e; steps < 2 && first.wait_next(e, 60);)
        if (e.kind == ChatEvent::Kind::Decode && e.decode.type == DecodeEvent::Type::Step) steps++;
    svc.cancel(b);
    svc.cancel(a);
    std::vector<ChatEvent> rest = collect(first);
    ASSERT_GE(rest.size(), 2u);
    const ChatEvent& fin = rest[rest.size() - 2];
    EXPECT_EQ(fin.kind, ChatEvent::Kind::LaneFinished);
    EXPECT_TRUE(fin.cancelled);
    ASSERT_TRUE(fin.result);
    EXPECT_LT(fin.result->tokens.size(), 512u);
    EXPECT_TRUE(rest.back().cancelled);

    const std::vector<ChatEvent> dropped = collect(second);
    ASSERT_EQ(dropped.size(), 1u);  // never started: only its Done
    EXPECT_EQ(dropped[0].kind, ChatEvent::Kind::Done);
    EXPECT_TRUE(dropped[0].cancelled);

    const std::vector<ChatEvent> after = collect(third);
    ASSERT_FALSE(after.empty());
    EXPECT_FALSE(after.back().cancelled);
    size_t i = 0;
    check_lane(after, i, 0);
    // The cancelled answer is kept as far as it got; the dropped prompt never entered the conversation.
    const auto msgs = svc.messages();
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(msgs[0].content, "Tell me everything.");
    EXPECT_EQ(msgs[2].content, "answered after");
}

TEST(ChatService, CompareModeAnswersWithTheBaselineFirst) {
    ChatService svc(tiny_options());
    ChatEventQueue q;
    ChatRequest r = request("Hello there");
    r.mode = ChatMode::Compare;
    svc.submit(r, q.sink());
    const std::vector<ChatEvent> ev = collect(q);
    size_t i = 0;
    check_lane(ev, i, 1);  // no AR model beside the fixture: the same weights decoded AR
    while (i < ev.size() && ev[i].kind == ChatEvent::Kind::Info) i++;
    check_lane(ev, i, 0);
    ASSERT_EQ(ev.back().kind, ChatEvent::Kind::Done);
    for (const ChatEvent& e : ev)
        if (e.kind == ChatEvent::Kind::Decode && e.decode.type == DecodeEvent::Type::Started) {
            EXPECT_EQ(e.decode.decoder, e.lane == 1 ? DecodeMode::AR : DecodeMode::Diffusion);
        }
    EXPECT_NE(ev[0].text.find("AR decoding"), std::string::npos) << ev[0].text;
    EXPECT_EQ(svc.messages().size(), 2u);  // the chat keeps the dLLM's answer only
}

TEST(ChatService, RequestWithItsOwnMessagesLeavesTheConversationAlone) {
    ChatService svc(tiny_options());
    ChatEventQueue q1;
    svc.submit(request("Hello there"), q1.sink());
    collect(q1);
    const auto before = svc.messages();

    auto model = Model::load(FIXTURES_DIR "/tiny/model");
    ChatSession reference(*model);
    reference.set_system("You are terse.");
    const ChatRequest plain = request("What now?");
    const GenerateResult want = reference.reply("What now?", plain.gen);

    ChatRequest r = plain;
    r.messages = std::vector<ChatMessage>{{"system", "You are terse.", {}}, {"user", "What now?", {}}};
    ChatEventQueue q2;
    svc.submit(r, q2.sink());
    const std::vector<ChatEvent> ev = collect(q2);
    ASSERT_GE(ev.size(), 2u);
    const ChatEvent& fin = ev[ev.size() - 2];
    ASSERT_TRUE(fin.result);
    EXPECT_EQ(fin.result->tokens, want.tokens);
    const auto after = svc.messages();
    ASSERT_EQ(after.size(), before.size());
    for (size_t k = 0; k < after.size(); k++) {
        EXPECT_EQ(after[k].content, before[k].content);
        EXPECT_EQ(after[k].ids, before[k].ids);  // token ids kept: the cache's reuse stays exact
    }
    EXPECT_THROW(svc.submit([&] {
        ChatRequest bad = plain;
        bad.messages = std::vector<ChatMessage>{{"user", "hi", {}}, {"assistant", "hello", {}}};
        return bad;
    }(), q2.sink()), Error);
}

TEST(ChatService, ConversationChangesWaitForTheAnswer) {
    ChatService svc(tiny_options());
    ChatEventQueue q;
    ChatRequest slow = request("Tell me everything.", DecodeMode::AR, 512);
    slow.gen.stop_tokens = {-1};
    slow.step_delay_ms = 20;
    const uint64_t id = svc.submit(slow, q.sink());
    EXPECT_TRUE(svc.busy());
    EXPECT_THROW(svc.clear(), Error);
    EXPECT_THROW(svc.set_system("x"), Error);
    EXPECT_THROW(svc.set_history_turns(0), Error);
    svc.cancel(id);
    collect(q);
    svc.wait_idle();
    svc.clear();
    EXPECT_TRUE(svc.messages().empty());
    EXPECT_THROW(svc.submit([] {
        ChatRequest bad = request("x");
        bad.gen.threshold = 2;
        return bad;
    }(), q.sink()), Error);
}

TEST(ChatService, StopsWithRequestsStillQueued) {
    std::atomic<int> done{0};
    {
        ChatService svc(tiny_options());
        for (int k = 0; k < 3; k++) {
            ChatRequest r = request("Tell me everything.", DecodeMode::AR, 512);
            r.gen.stop_tokens = {-1};
            r.step_delay_ms = 5;
            svc.submit(r, [&](ChatEvent&& e) {
                if (e.kind == ChatEvent::Kind::Done) done++;
            });
        }
    }  // the destructor cancels the running answer and the queued ones
    EXPECT_EQ(done.load(), 3);
}

TEST(ChatService, SavesAndLoadsTheConversation) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("fastdllm_svc_" + std::to_string(::getpid()));
    ChatService svc(tiny_options());
    ChatEventQueue q;
    svc.submit(request("Hello there"), q.sink());
    collect(q);
    const std::string path = (dir / "sub" / "chat.json").string();
    svc.save(path);
    ChatService other(tiny_options());
    other.load(path);
    ASSERT_EQ(other.messages().size(), 2u);
    EXPECT_EQ(other.messages()[1].content, svc.messages()[1].content);
    EXPECT_EQ(other.saved_text(), svc.saved_text());
    std::ofstream(path) << "{\"messages\": [";
    try {
        other.load(path);
        ADD_FAILURE() << "a broken file loaded";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(path, 0), 0u) << e.what();
    }
    fs::remove_all(dir);
}
