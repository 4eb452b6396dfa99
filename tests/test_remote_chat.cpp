// The remote chat's stream conversion (client/answer_stream): recorded streams of fastdllm serve
// (tests/fixtures/remote/*.sse: diffusion with a prefill, diffusion over two blocks, the AR
// baseline, and the random tiny model's answer full of broken characters) replayed in pieces of
// every size give the events a local decoder would (the answer view's text is the server's, the
// block view holds each pass's cells, the statistics are the server's); a character split between
// tokens is read whole; a text-only stream (other OpenAI-compatible servers) becomes AR-style
// steps; error objects and the request body. Then RemoteChat itself against a stand-in server
// (cpp-httplib, in the test): lanes and events in order, the conversation and what each request
// sends of it, compare mode, cancel closing the stream, error statuses, save and load.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "client/answer_stream.h"
#include "client/remote_chat.h"
#include "engine/io/error.h"
#include "engine/io/files.h"
#ifdef FASTDLLM_HAVE_UI
#include "ui/text.h"
#include "ui/view_model.h"
#endif

namespace {

using namespace fdl;
using namespace fdl::client;
using json = nlohmann::json;

std::string fixture(const std::string& name) { return read_file(std::string(SOURCE_DIR) + "/tests/fixtures/remote/" + name); }

// A recorded stream fed through an AnswerStream. `on_event` sees each event as it is emitted, as
// the chat's UI thread would (the token table may learn more later).
struct Replay {
    std::shared_ptr<RemoteTokens> tokens = std::make_shared<RemoteTokens>();
    std::shared_ptr<std::vector<DecodeEvent>> events = std::make_shared<std::vector<DecodeEvent>>();
    std::shared_ptr<std::function<void(const DecodeEvent&)>> on_event = std::make_shared<std::function<void(const DecodeEvent&)>>();
    std::unique_ptr<AnswerStream> stream;
    explicit Replay(std::vector<int32_t> stops = {}) {
        tokens->set_stops(std::move(stops));
        auto ev = events;
        auto cb = on_event;
        stream = std::make_unique<AnswerStream>(tokens, [ev, cb](const DecodeEvent& e) {
            ev->push_back(e);
            if (*cb) (*cb)(e);
        }, 0.0);
    }
    // Feeds `sse` in pieces of 1 to max_piece bytes (0: whole) and ends the stream.
    void feed(const std::string& sse, size_t max_piece, unsigned seed = 1) {
        SseReader reader;
        std::mt19937 rng(seed);
        double t = 0;
        for (size_t i = 0; i < sse.size();) {
            const size_t n = max_piece == 0 ? sse.size() : std::min(sse.size() - i, 1 + size_t(rng()) % max_piece);
            reader.feed(sse.data() + i, n, [&](const std::string&, const std::string& data) { stream->on_data(data, t += 0.001); });
            i += n;
        }
        stream->finish(false, t + 0.001);
    }
};

std::string sse_of(const std::vector<json>& chunks) {
    std::string s;
    for (const json& c : chunks) s += "data: " + c.dump() + "\n\n";
    return s + "data: [DONE]\n\n";
}

json step_chunk(const char* kind, int block_index, int block_start, int block_size, int prompt, int nfe,
                const std::vector<std::tuple<int, int, double, std::string>>& unmasked, const std::vector<int>& block,
                const std::vector<std::string>& block_text) {
    json un = json::array(), text = json::array();
    for (auto& [p, t, c, s] : unmasked) un.push_back({p, t, c}), text.push_back(s);
    return {{"choices", json::array()},
            {"step",
             {{"kind", kind}, {"decoder", std::string(kind) == "decode" ? "ar" : "diffusion"}, {"block_index", block_index},
              {"block_start", block_start}, {"block_size", block_size}, {"sub_block_size", block_size}, {"prompt_tokens", prompt},
              {"nfe", nfe}, {"unmasked", un}, {"text", text}, {"block", block}, {"block_text", block_text}}}};
}
json delta(const std::string& text) { return {{"choices", {{{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}}}}}; }
json finish(const char* reason) { return {{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", reason}}}}}; }

// What the recording itself says: its text, its step chunks and its final figures.
struct Recorded {
    std::string content;
    int steps = 0;
    std::vector<json> step;  // the step chunks' "step" objects
    json usage, timings;
};
Recorded read_recording(const std::string& sse) {
    Recorded r;
    SseReader reader;
    reader.feed(sse.data(), sse.size(), [&](const std::string&, const std::string& data) {
        if (data == "[DONE]") return;
        const json j = json::parse(data);
        if (j.contains("step")) r.steps++, r.step.push_back(j["step"]);
        if (j.contains("usage")) r.usage = j["usage"], r.timings = j["timings"];
        if (!j["choices"].empty() && j["choices"][0]["delta"].contains("content"))
            r.content += j["choices"][0]["delta"]["content"].get<std::string>();
    });
    return r;
}

class RecordedStream : public ::testing::TestWithParam<const char*> {};

TEST_P(RecordedStream, ReplaysAsDecodeEvents) {
    const std::string sse = fixture(GetParam());
    const Recorded rec = read_recording(sse);
    ASSERT_FALSE(rec.content.empty());
    for (size_t piece : {size_t(0), size_t(1), size_t(7), size_t(64)}) {
        SCOPED_TRACE("pieces of up to " + std::to_string(piece) + " bytes");
        Replay r({4094, 4092});  // the demo models' end-of-answer ids, as /v1/models lists them
#ifdef FASTDLLM_HAVE_UI
        // The chat's answer view, rebuilt from the events alone as they come, reads the server's
        // text, and after every pass its block view holds the cells of the server's block.
        const ui::TokenText tt = ui::TokenText::of(r.tokens);
        ui::AnswerView view;
        size_t step_no = 0;
        bool saw_masked = false;
        *r.on_event = [&](const DecodeEvent& e) {
            ui::apply_event(view, e, tt);
            EXPECT_EQ(view.text.find("\xEF\xBF\xBD"), std::string::npos);
            EXPECT_EQ(rec.content.compare(0, view.text.size(), view.text), 0) << "not the server's text: " << view.text;
            saw_masked = saw_masked || view.block.count(ui::CellKind::Masked) > 0;
            if (e.type != DecodeEvent::Type::Step) return;
            ASSERT_LT(step_no, rec.step.size());
            const json& raw = rec.step[step_no++];
            for (const Unmasked& u : e.unmasked) {
                if (!view.ar && (u.position < view.block.start || u.position >= view.block.start + view.block.size)) continue;
                bool found = false;
                for (const ui::Cell& c : view.block.cells)
                    if (c.position == u.position) {
                        found = true;
                        EXPECT_EQ(c.kind, ui::CellKind::Decoded) << "position " << u.position;
                        EXPECT_EQ(c.token, u.token);
                        EXPECT_EQ(c.step, view.steps - 1);
                        EXPECT_EQ(c.text, ui::token_cell_text(r.tokens->bytes(u.token)));
                        EXPECT_FALSE(c.text.empty());
                    }
                EXPECT_TRUE(found) << "position " << u.position << " not in the block view";
            }
            if (view.ar || raw["kind"] == "prefill") return;
            // Every cell of the server's block: -1 masked, else that token (decided or prompt).
            ASSERT_EQ(view.block.start, raw["block_start"].get<int>());
            ASSERT_EQ(view.block.cells.size(), raw["block"].size());
            for (size_t i = 0; i < raw["block"].size(); i++) {
                const int t = raw["block"][i].get<int>();
                const ui::Cell& c = view.block.cells[i];
                if (t < 0) {
                    EXPECT_EQ(c.kind, ui::CellKind::Masked) << "cell " << i;
                } else {
                    EXPECT_TRUE(c.kind == ui::CellKind::Decoded || c.kind == ui::CellKind::Prompt) << "cell " << i;
                    EXPECT_EQ(c.token, t);
                    EXPECT_EQ(c.text, ui::token_cell_text(raw["block_text"][i].get<std::string>()));
                }
            }
        };
#endif
        r.feed(sse, piece);
        const AnswerStream& s = *r.stream;
        EXPECT_EQ(s.content(), rec.content);
        EXPECT_TRUE(s.done());
        EXPECT_TRUE(s.streamed_steps());
        EXPECT_EQ(s.finish_reason(), "stop");
        EXPECT_TRUE(s.error().empty()) << s.error();
        const auto& ev = *r.events;
        ASSERT_GE(ev.size(), 3u);
        EXPECT_EQ(ev.front().type, DecodeEvent::Type::Started);
        EXPECT_EQ(ev.back().type, DecodeEvent::Type::Finished);
        int steps = 0, blocks = 0;
        for (const DecodeEvent& e : ev) {
            steps += e.type == DecodeEvent::Type::Step;
            blocks += e.type == DecodeEvent::Type::BlockStarted;
            EXPECT_EQ(e.mask_token, kRemoteMask);
        }
        EXPECT_EQ(steps, rec.steps);
        if (ev.front().decoder == DecodeMode::Diffusion) {
            EXPECT_GE(blocks, 1);
        } else {
            EXPECT_EQ(blocks, 0);
        }

        // The Finished event's statistics are the server's.
        const DecodeStats& st = ev.back().stats;
        EXPECT_EQ(st.prompt_tokens, rec.usage["prompt_tokens"].get<int>());
        EXPECT_EQ(st.reused_tokens, rec.usage["prompt_tokens_details"]["cached_tokens"].get<int>());
        EXPECT_EQ(st.generated_tokens, rec.timings["predicted_n"].get<int>());
        EXPECT_EQ(st.nfe, rec.timings["forward_passes"].get<int>());
        EXPECT_NEAR(st.decode_seconds, rec.timings["predicted_ms"].get<double>() / 1e3, 1e-9);
        EXPECT_NEAR(st.tokens_per_forward(), rec.timings["tokens_per_forward"].get<double>(), 1e-3);
        EXPECT_TRUE(ev.back().stopped);

#ifdef FASTDLLM_HAVE_UI
        EXPECT_EQ(step_no, size_t(rec.steps));
        EXPECT_EQ(view.text, rec.content);
        EXPECT_TRUE(view.finished);
        EXPECT_TRUE(view.stopped);
        EXPECT_EQ(view.ar, ev.front().decoder == DecodeMode::AR);
        if (!view.ar) {
            EXPECT_TRUE(saw_masked);
        }
        EXPECT_NE(ui::answer_summary(view.stats).find("NFE " + std::to_string(rec.timings["forward_passes"].get<int>())),
                  std::string::npos);
#endif
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RecordedStream,
                         ::testing::Values("diffusion_prefill.sse", "diffusion_blocks.sse", "ar.sse"));

TEST(RemoteStream, PrefillAndCommitCellsLikeTheDecoder) {
    Replay r({4094, 4092});
    r.feed(fixture("diffusion_prefill.sse"), 0);
    const auto& ev = *r.events;
    // Started, then the prefill pass: it knows only the cells of the sequence (the decided head).
    ASSERT_GE(ev.size(), 3u);
    EXPECT_EQ(ev[1].type, DecodeEvent::Type::Step);
    EXPECT_EQ(ev[1].step, StepKind::Prefill);
    EXPECT_EQ(ev[1].block.size(), 1u);
    EXPECT_EQ(ev[0].stats.prompt_tokens, 32);
    // A new block begins with the cells its first pass decides still masked.
    EXPECT_EQ(ev[2].type, DecodeEvent::Type::BlockStarted);
    EXPECT_EQ(ev[2].block_index, 0);
    ASSERT_GE(ev.size(), 4u);
    ASSERT_FALSE(ev[3].unmasked.empty());
    for (const Unmasked& u : ev[3].unmasked) {
        const size_t i = size_t(u.position - ev[2].block_start);
        ASSERT_LT(i, ev[2].block.size());
        EXPECT_EQ(ev[2].block[i], kRemoteMask);
    }

    Replay b({4094, 4092});
    b.feed(fixture("diffusion_blocks.sse"), 0);
    std::vector<int> started;
    for (const DecodeEvent& e : *b.events)
        if (e.type == DecodeEvent::Type::BlockStarted) started.push_back(e.block_index);
    EXPECT_EQ(started, (std::vector<int>{0, 1}));  // the commit ends block 0
}

TEST(RemoteStream, CharacterSplitBetweenTokensReadsWhole) {
    // "你" is E4 BD A0: token 100 holds E4 BD, token 101 holds A0; each comes as U+FFFD.
    const std::string r = "\xEF\xBF\xBD";
    auto block = [](std::vector<int> v) {
        while (v.size() < 8) v.push_back(-1);
        return v;
    };
    auto texts = [&](std::vector<std::string> v) {
        while (v.size() < 8) v.push_back("");
        return v;
    };
    const std::string sse = sse_of({
        step_chunk("block", 0, 0, 8, 2, 1, {{2, 100, 0.91, r}}, block({10, 11, 100}), texts({"a", "b", r})),
        step_chunk("subblock", 0, 0, 8, 2, 2, {{3, 101, 0.95, r}}, block({10, 11, 100, 101}), texts({"a", "b", r, r})),
        delta("你"),
        step_chunk("subblock", 0, 0, 8, 2, 3, {{4, 102, 0.99, "!"}, {5, 7, 0.99, "<|im_end|>"}},
                   block({10, 11, 100, 101, 102, 7}), texts({"a", "b", r, r, "!", "<|im_end|>"})),
        delta("!"),
        finish("stop"),
    });
    for (size_t piece : {size_t(0), size_t(3)}) {
        Replay rp({7});
#ifdef FASTDLLM_HAVE_UI
        const ui::TokenText tt = ui::TokenText::of(rp.tokens);
        ui::AnswerView view;
        *rp.on_event = [&](const DecodeEvent& e) {
            ui::apply_event(view, e, tt);
            EXPECT_EQ(view.text.find(r), std::string::npos) << "a half character reached the text";
        };
#endif
        rp.feed(sse, piece);
        EXPECT_EQ(rp.stream->content(), "你!");
        const auto& ev = *rp.events;
        ASSERT_EQ(ev.size(), 6u);  // Started, BlockStarted, three steps, Finished: held back, never dropped
        EXPECT_EQ(ev[2].step, StepKind::Block);
        EXPECT_EQ(ev[4].unmasked.size(), 2u);
        // The two cells have ids of their own (token 100 elsewhere is not always these bytes),
        // with the bytes the answer's text shows; the result keeps the server's ids.
        const int32_t a = ev[2].unmasked[0].token, b = ev[3].unmasked[0].token;
        EXPECT_GE(a, kFirstTextId);
        EXPECT_GE(b, kFirstTextId);
        EXPECT_EQ(rp.tokens->bytes(a), "\xE4\xBD");
        EXPECT_EQ(rp.tokens->bytes(b), "\xA0");
        EXPECT_EQ(ev[4].block[2], a);  // later blocks name the cell the same way
        EXPECT_EQ(ev[4].block[3], b);
        EXPECT_EQ(rp.stream->tokens(), (std::vector<int32_t>{100, 101, 102, 7}));
#ifdef FASTDLLM_HAVE_UI
        EXPECT_EQ(view.text, "你!");
        EXPECT_TRUE(view.stopped);
#endif
    }
}

TEST(RemoteStream, PartialCharacterBeforeTheStopIsLeftOutAsByTheServer) {
    // AR steps: "x", then E4 (part of a character the stop token cuts), then the stop; and an
    // invalid byte within the text, which the server's text shows as U+FFFD.
    const std::string r = "\xEF\xBF\xBD";
    auto ar = [&](int pos, int nfe, int id, const std::string& text) {
        json c = step_chunk(nfe == 1 ? "prefill" : "decode", -1, pos, 1, 4, nfe, {{pos, id, 0.9, text}}, {id}, {text});
        c["step"]["decoder"] = "ar";
        return c;
    };
    const std::string sse = sse_of({ar(4, 1, 50, "x"), delta("x"), ar(5, 2, 60, r), ar(6, 3, 51, "y"), delta(r + "y"),
                                    ar(7, 4, 61, r), ar(8, 5, 7, "<|im_end|>"), finish("stop")});
    Replay rp({7});
#ifdef FASTDLLM_HAVE_UI
    const ui::TokenText tt = ui::TokenText::of(rp.tokens);
    ui::AnswerView view;
    *rp.on_event = [&](const DecodeEvent& e) { ui::apply_event(view, e, tt); };
#endif
    rp.feed(sse, 0);
    EXPECT_EQ(rp.stream->content(), "x" + r + "y");
    EXPECT_EQ(rp.events->size(), 7u);
#ifdef FASTDLLM_HAVE_UI
    EXPECT_EQ(view.text, "x" + r + "y");
    EXPECT_TRUE(view.ar);
#endif
}

TEST(RemoteStream, BrokenCharactersReadAsTheServerSentThem) {
    // The random tiny model's answer to a French prompt (tiny_utf8.sse): dozens of tokens that are
    // parts of characters or bytes that form none, decided out of order, and an answer that ends
    // by length in the middle of such bytes. At every event the text shown is the start of the
    // server's text, and at the end all of it.
    const std::string sse = fixture("tiny_utf8.sse");
    const Recorded rec = read_recording(sse);
    ASSERT_NE(rec.content.find("\xEF\xBF\xBD"), std::string::npos);
    for (size_t piece : {size_t(0), size_t(1), size_t(5), size_t(64)}) {
        SCOPED_TRACE("pieces of up to " + std::to_string(piece) + " bytes");
        Replay r({382});
#ifdef FASTDLLM_HAVE_UI
        const ui::TokenText tt = ui::TokenText::of(r.tokens);
        ui::AnswerView view;
        *r.on_event = [&](const DecodeEvent& e) {
            ui::apply_event(view, e, tt);
            EXPECT_EQ(rec.content.compare(0, view.text.size(), view.text), 0) << "not the server's text: " << view.text;
        };
#endif
        r.feed(sse, piece);
        EXPECT_EQ(r.stream->content(), rec.content);
        EXPECT_EQ(r.stream->finish_reason(), "length");
        EXPECT_EQ(int(r.events->size()), rec.steps + 2 + [&] {
            int b = 0;  // one BlockStarted per block
            for (const DecodeEvent& e : *r.events) b += e.type == DecodeEvent::Type::BlockStarted;
            return b;
        }());
#ifdef FASTDLLM_HAVE_UI
        EXPECT_EQ(view.text, rec.content);
#endif
    }
}

TEST(RemoteStream, TextOnlyStreamBecomesArSteps) {
    json role = {{"choices", {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}}}};
    json usage = {{"choices", json::array()}, {"usage", {{"prompt_tokens", 9}, {"completion_tokens", 5}, {"total_tokens", 14}}}};
    Replay r;
    r.feed(sse_of({role, delta("Hel"), delta("lo "), delta("w\xC3\xB6rld"), finish("stop"), usage}), 5);
    const auto& ev = *r.events;
    ASSERT_EQ(ev.size(), 5u);  // Started, three steps, Finished
    EXPECT_EQ(ev[1].step, StepKind::Prefill);
    EXPECT_EQ(ev[2].step, StepKind::Decode);
    EXPECT_EQ(ev[1].decoder, DecodeMode::AR);
    EXPECT_GE(ev[3].unmasked[0].token, kFirstTextId);
    EXPECT_EQ(r.tokens->bytes(ev[3].unmasked[0].token), "w\xC3\xB6rld");
    const DecodeStats& st = ev.back().stats;
    EXPECT_EQ(st.prompt_tokens, 9);
    EXPECT_EQ(st.generated_tokens, 5);  // the server's count of tokens, not of deltas
    EXPECT_EQ(st.nfe, 5);
    EXPECT_DOUBLE_EQ(st.tokens_per_forward(), 1.0);
    EXPECT_FALSE(r.stream->streamed_steps());
    EXPECT_EQ(r.stream->content(), "Hello w\xC3\xB6rld");
#ifdef FASTDLLM_HAVE_UI
    ui::AnswerView view;
    const ui::TokenText tt = ui::TokenText::of(r.tokens);
    for (const DecodeEvent& e : ev) ui::apply_event(view, e, tt);
    EXPECT_EQ(view.text, "Hello w\xC3\xB6rld");
    EXPECT_TRUE(view.ar);
    EXPECT_EQ(view.block.count(ui::CellKind::Decoded), 3);
    EXPECT_EQ(view.block.cells[0].text, ui::token_cell_text("Hel"));
#endif
}

TEST(RemoteStream, ErrorsAndEvents) {
    Replay r;
    r.feed("data: {\"error\": {\"message\": \"the server is shutting down\", \"type\": \"server_error\"}}\n\ndata: [DONE]\n\n", 0);
    EXPECT_EQ(r.stream->error(), "the server is shutting down");
    Replay bad;
    bad.feed("data: {not json\n\n", 0);
    EXPECT_NE(bad.stream->error().find("not a JSON object"), std::string::npos);

    // Comments, CRLF line ends, an event name, data over two lines.
    SseReader reader;
    std::vector<std::pair<std::string, std::string>> got;
    const std::string s = ": waiting\r\n\r\nevent: error\r\ndata: a\r\ndata: b\r\n\r\ndata:c\n\n";
    for (char ch : s) reader.feed(&ch, 1, [&](const std::string& e, const std::string& d) { got.emplace_back(e, d); });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"error", "a\nb"}));
    EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"", "c"}));
}

TEST(RemoteStream, TokenNames) {
    RemoteTokens t;
    t.set_stops({7});
    t.set(5, "<|im_start|>");
    t.set(6, "x");
    t.set(8, "\xEF\xBF\xBD");
    EXPECT_TRUE(t.special(5));
    EXPECT_TRUE(t.special(7));
    EXPECT_FALSE(t.special(6));
    EXPECT_TRUE(t.exact(6));
    EXPECT_FALSE(t.exact(8));
    const int32_t c = t.add_cell("\xEF\xBF\xBD");
    EXPECT_GE(c, kFirstTextId);
    EXPECT_FALSE(t.exact(c));
    t.resolve(c, "\xE4\xBD");
    EXPECT_TRUE(t.exact(c));
    EXPECT_EQ(t.bytes(c), "\xE4\xBD");
    EXPECT_FALSE(t.special(c));
    t.leave_out(c);
    EXPECT_TRUE(t.special(c));
    EXPECT_NE(t.add_text("a"), c);
    EXPECT_EQ(t.bytes(99), "");
}

TEST(RemoteChatRequest, Body) {
    GenerateOptions g;
    g.mode = DecodeMode::Diffusion;
    g.max_new_tokens = 64;
    g.block_size = 32;
    g.sub_block_size = 4;
    g.threshold = 0.9f;
    g.cache = CacheMode::DualOverlap;
    g.unmask = UnmaskOrder::Prefix;
    g.sampling.temperature = 0.7f;
    g.sampling.seed = 42;
    const json b = RemoteChat::request_body("demo-dllm", g, {{"system", "Be brief.", {}}, {"user", "Hi", {}}});
    EXPECT_EQ(b["model"], "demo-dllm");
    EXPECT_EQ(b["messages"], json::parse(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])"));
    EXPECT_EQ(b["stream"], true);
    EXPECT_EQ(b["stream_options"], json::parse(R"({"include_usage":true,"include_steps":true})"));
    EXPECT_EQ(b["mode"], "diffusion");
    EXPECT_EQ(b["threshold"], 0.9);
    EXPECT_EQ(b["block_size"], 32);
    EXPECT_EQ(b["sub_block_size"], 4);
    EXPECT_EQ(b["cache"], "dual-overlap");
    EXPECT_EQ(b["unmask"], "prefix");
    EXPECT_EQ(b["max_tokens"], 64);
    EXPECT_EQ(b["temperature"], 0.7);
    EXPECT_EQ(b["top_p"], 1.0);
    EXPECT_EQ(b["seed"], 42);
    EXPECT_FALSE(b.contains("top_k"));
}

TEST(RemoteChatRequest, DeadServerIsOneLine) {
    RemoteChatOptions o;
    o.url = "http://127.0.0.1:1/";
    try {
        RemoteChat chat(o);
        FAIL() << "connected to port 1";
    } catch (const Error& e) {
        const std::string w = e.what();
        EXPECT_EQ(w.rfind("cannot reach the server at http://127.0.0.1:1: ", 0), 0u) << w;
        EXPECT_EQ(w.find('\n'), std::string::npos);
    }
    o.url = "127.0.0.1:8080";
    EXPECT_THROW(RemoteChat{o}, Error);
}

}  // namespace

namespace {

// A stand-in for an OpenAI-compatible server on 127.0.0.1: GET /v1/models lists `models`; each
// POST /v1/chat/completions is kept and answered with `answer(body)` as a stream, or with
// `status` and `error_body` when status is not 200. With `hold`, the stream sends one comment
// and then keeps the connection open until the client goes away (`gone`).
struct StandIn {
    httplib::Server http;
    std::thread thread;
    int port = 0;
    json models;
    std::function<std::string(const json&)> answer;
    int status = 200;
    std::string error_body;
    std::atomic<bool> hold{false}, gone{false};
    std::mutex mu;
    std::vector<json> bodies;

    StandIn() {
        http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(models.dump(), "application/json");
        });
        http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
            const json body = json::parse(req.body);
            {
                std::lock_guard<std::mutex> lk(mu);
                bodies.push_back(body);
            }
            if (status != 200) {
                res.status = status;
                res.set_content(error_body, "application/json");
                return;
            }
            const std::string sse = answer ? answer(body) : std::string();
            res.set_chunked_content_provider("text/event-stream", [this, sse](size_t, httplib::DataSink& sink) {
                if (hold) {
                    for (int i = 0; i < 500; i++) {
                        const std::string c = ": waiting\n\n";
                        if (!sink.write(c.data(), c.size())) {
                            gone = true;
                            return false;
                        }
                        std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    }
                }
                sink.write(sse.data(), sse.size());
                sink.done();
                return true;
            });
        });
        port = http.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { http.listen_after_bind(); });
    }
    ~StandIn() {
        http.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
    json body(size_t i) {
        std::lock_guard<std::mutex> lk(mu);
        return i < bodies.size() ? bodies[i] : json();
    }
    size_t requests() {
        std::lock_guard<std::mutex> lk(mu);
        return bodies.size();
    }
};

json demo_models() {
    return json::parse(R"({"object": "list", "data": [
        {"id": "demo-dllm", "object": "model", "meta": {"diffusion": true, "block_size": 32, "context": 2048,
                                                       "eos_token_ids": [4094, 4092], "history_turns": 0}},
        {"id": "demo-ar", "object": "model", "meta": {"role": "AR baseline"}}]})");
}

// Runs one request to its Done event; the events in order.
std::vector<ChatEvent> answer(ChatBackend& chat, ChatRequest r) {
    ChatEventQueue q;
    chat.submit(std::move(r), q.sink());
    std::vector<ChatEvent> out;
    for (int i = 0; i < 2000; i++) {
        ChatEvent e;
        if (!q.wait_next(e, 0.01)) continue;
        const bool done = e.kind == ChatEvent::Kind::Done;
        out.push_back(std::move(e));
        if (done) break;
    }
    return out;
}

ChatRequest prompt(const std::string& text, ChatMode mode = ChatMode::Single) {
    ChatRequest r;
    r.prompt = text;
    r.mode = mode;
    r.gen.mode = DecodeMode::Diffusion;
    r.gen.max_new_tokens = 96;
    return r;
}

}  // namespace

TEST(RemoteChatServer, AnswersKeepTheConversation) {
    StandIn s;
    s.models = demo_models();
    const std::string sse = fixture("diffusion_prefill.sse");
    s.answer = [&](const json&) { return sse; };
    RemoteChatOptions o;
    o.url = s.url() + "/v1/";
    RemoteChat chat(o);
    const ChatBackendInfo info = chat.info();
    EXPECT_EQ(info.name, "demo-dllm");
    EXPECT_EQ(info.server, s.url());
    EXPECT_TRUE(info.diffusion);
    EXPECT_EQ(info.block_size, 32);
    EXPECT_EQ(info.context, 2048);
    EXPECT_EQ(info.stop_ids, (std::vector<int32_t>{4094, 4092}));
    EXPECT_EQ(chat.ar_model(), "demo-ar");
    EXPECT_EQ(chat.history_turns(), 0);  // the server's meta says so

    const std::vector<ChatEvent> ev = answer(chat, prompt("Reverse the word garden."));
    ASSERT_GE(ev.size(), 5u);
    EXPECT_EQ(ev[0].kind, ChatEvent::Kind::LaneStarted);
    EXPECT_EQ(ev[0].text, "demo-dllm · diffusion");
    EXPECT_EQ(ev[0].model, nullptr);
    ASSERT_NE(ev[0].tokens, nullptr);
    EXPECT_EQ(ev[0].tokens->stops(), info.stop_ids);
    EXPECT_EQ(ev[1].kind, ChatEvent::Kind::Decode);
    EXPECT_EQ(ev[1].decode.type, DecodeEvent::Type::Started);
    const ChatEvent& fin = ev[ev.size() - 2];
    EXPECT_EQ(ev[ev.size() - 3].decode.type, DecodeEvent::Type::Finished);
    EXPECT_EQ(fin.kind, ChatEvent::Kind::LaneFinished);
    EXPECT_EQ(fin.error, "");
    EXPECT_EQ(fin.text, "The reverse of garden is nedrag.");
    ASSERT_NE(fin.result, nullptr);
    EXPECT_TRUE(fin.result->stopped);
    EXPECT_EQ(ev.back().kind, ChatEvent::Kind::Done);
    EXPECT_FALSE(ev.back().cancelled);

    const json b0 = s.body(0);
    EXPECT_EQ(b0["model"], "demo-dllm");
    EXPECT_EQ(b0["messages"], json::parse(R"([{"role": "user", "content": "Reverse the word garden."}])"));
    EXPECT_EQ(b0["mode"], "diffusion");
    const auto msgs = chat.messages();
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[1].role, "assistant");
    EXPECT_EQ(msgs[1].content, "The reverse of garden is nedrag.");

    // The history window and the system prompt shape what the next request sends.
    answer(chat, prompt("Again."));
    EXPECT_EQ(s.body(1)["messages"].size(), 1u);  // history 0: the new message alone
    chat.set_history_turns(-1);
    chat.set_system("Be brief.");
    answer(chat, prompt("Once more."));
    const json m = s.body(2)["messages"];
    ASSERT_EQ(m.size(), 6u);
    EXPECT_EQ(m[0], json::parse(R"({"role": "system", "content": "Be brief."})"));
    EXPECT_EQ(m[1]["content"], "Reverse the word garden.");
    EXPECT_EQ(m[5], json::parse(R"({"role": "user", "content": "Once more."})"));
    chat.set_history_turns(1);
    answer(chat, prompt("Last."));
    EXPECT_EQ(s.body(3)["messages"].size(), 4u);  // system, one exchange, the new message

    // Save and load, as the local chat does.
    const std::string path = (std::filesystem::temp_directory_path() / ("fdl-remote-" + std::to_string(s.port)) / "s.json").string();
    chat.save(path);
    const std::string saved = chat.saved_text();
    chat.clear();
    EXPECT_TRUE(chat.messages().empty());
    chat.load(path);
    EXPECT_EQ(chat.saved_text(), saved);
    EXPECT_EQ(chat.messages().size(), 8u);
    EXPECT_EQ(chat.system(), "Be brief.");
    EXPECT_THROW(chat.from_json(json::parse(R"({"messages": [{"role": "robot", "content": "x"}]})")), Error);
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());

    // Messages of its own: answered, the conversation left alone.
    ChatRequest own = prompt("");
    own.messages = std::vector<ChatMessage>{{"user", "Hi", {}}};
    answer(chat, own);
    EXPECT_EQ(s.body(4)["messages"], json::parse(R"([{"role": "user", "content": "Hi"}])"));
    EXPECT_EQ(chat.messages().size(), 8u);
    ChatRequest ids = prompt("");
    ids.prompt_ids = std::vector<int32_t>{1, 2};
    EXPECT_THROW(chat.submit(ids, [](ChatEvent&&) {}), Error);
}

TEST(RemoteChatServer, CompareModeAsksTheBaselineFirst) {
    StandIn s;
    s.models = demo_models();
    s.answer = [&](const json& body) { return fixture(body["mode"] == "ar" ? "ar.sse" : "diffusion_blocks.sse"); };
    RemoteChatOptions o;
    o.url = s.url();
    RemoteChat chat(o);
    const std::vector<ChatEvent> ev = answer(chat, prompt("Reverse the word garden.", ChatMode::Compare));
    std::vector<std::pair<int, ChatEvent::Kind>> lanes;
    for (const ChatEvent& e : ev)
        if (e.kind == ChatEvent::Kind::LaneStarted || e.kind == ChatEvent::Kind::LaneFinished) lanes.emplace_back(e.lane, e.kind);
    EXPECT_EQ(lanes, (std::vector<std::pair<int, ChatEvent::Kind>>{{1, ChatEvent::Kind::LaneStarted},
                                                                   {1, ChatEvent::Kind::LaneFinished},
                                                                   {0, ChatEvent::Kind::LaneStarted},
                                                                   {0, ChatEvent::Kind::LaneFinished}}));
    EXPECT_EQ(ev[0].text, "demo-ar · AR baseline");
    ASSERT_EQ(s.requests(), 2u);
    EXPECT_EQ(s.body(0)["model"], "demo-ar");
    EXPECT_EQ(s.body(0)["mode"], "ar");
    EXPECT_EQ(s.body(1)["model"], "demo-dllm");
    EXPECT_EQ(s.body(1)["mode"], "diffusion");
    const auto msgs = chat.messages();  // the conversation keeps the dLLM's answer
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[1].content, "The reverse of garden is nedrag.");

    // --ar-remote-model names another baseline; a name the server does not list is refused.
    o.ar_model = "demo-dllm";
    EXPECT_NO_THROW(RemoteChat{o});
    o.ar_model = "nosuch";
    EXPECT_THROW(RemoteChat{o}, Error);
}

TEST(RemoteChatServer, CancelClosesTheStream) {
    StandIn s;
    s.models = demo_models();
    s.hold = true;
    s.answer = [&](const json&) { return fixture("diffusion_prefill.sse"); };
    RemoteChatOptions o;
    o.url = s.url();
    RemoteChat chat(o);
    ChatEventQueue q;
    const uint64_t id = chat.submit(prompt("Reverse the word garden."), q.sink());
    EXPECT_TRUE(chat.busy());
    for (int i = 0; i < 500 && s.requests() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_THROW(chat.set_system("x"), Error);  // not while answering
    chat.cancel(id);
    chat.wait_idle();
    EXPECT_FALSE(chat.busy());
    bool finished_cancelled = false, done_cancelled = false;
    for (ChatEvent& e : q.take_all()) {
        if (e.kind == ChatEvent::Kind::LaneFinished) finished_cancelled = e.cancelled && e.error.empty();
        if (e.kind == ChatEvent::Kind::Done) done_cancelled = e.cancelled;
    }
    EXPECT_TRUE(finished_cancelled);
    EXPECT_TRUE(done_cancelled);
    for (int i = 0; i < 300 && !s.gone; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(s.gone) << "the server still has the stream";
    // The cancelled exchange is kept as far as it got, as the local chat keeps it.
    EXPECT_EQ(chat.messages().size(), 2u);
}

TEST(RemoteChatServer, ErrorsEndTheLaneWithOneLine) {
    StandIn s;
    s.models = demo_models();
    s.status = 400;
    s.error_body = R"({"error": {"message": "max_tokens must be in [1, 4096]", "type": "invalid_request_error", "param": "max_tokens", "code": null}})";
    RemoteChatOptions o;
    o.url = s.url();
    RemoteChat chat(o);
    std::vector<ChatEvent> ev = answer(chat, prompt("hello"));
    ASSERT_EQ(ev.size(), 3u);  // LaneStarted, LaneFinished with the error, Done
    EXPECT_EQ(ev[1].error, "the server refused the request (HTTP 400): max_tokens must be in [1, 4096]");
    EXPECT_TRUE(chat.messages().empty());

    // An error event inside a stream.
    s.status = 200;
    s.answer = [](const json&) { return std::string("data: {\"error\": {\"message\": \"the server is shutting down\"}}\n\ndata: [DONE]\n\n"); };
    ev = answer(chat, prompt("hello"));
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[1].error, "the server: the server is shutting down");

    // The server goes away between two prompts.
    const std::string url = s.url();
    s.http.stop();
    ev = answer(chat, prompt("hello"));
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[1].error.rfind("cannot reach the server at " + url + ": ", 0), 0u) << ev[1].error;
    EXPECT_TRUE(chat.messages().empty());
}

TEST(RemoteChatServer, ApiKeyAndModelList) {
    StandIn s;
    s.models = json::parse(R"({"object": "list", "data": [{"id": "plain-model", "object": "model"}]})");
    s.http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("Authorization") == "Bearer sesame") return httplib::Server::HandlerResponse::Unhandled;
        res.status = 401;
        res.set_content(R"({"error": {"message": "a valid API key is required"}})", "application/json");
        return httplib::Server::HandlerResponse::Handled;
    });
    RemoteChatOptions o;
    o.url = s.url();
    try {
        RemoteChat chat(o);
        FAIL() << "no key, yet accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("refused the request (HTTP 401): a valid API key is required (give the key with --api-key KEY)"),
                  std::string::npos)
            << e.what();
    }
    o.api_key = "sesame";
    RemoteChat chat(o);
    EXPECT_EQ(chat.info().name, "plain-model");
    EXPECT_FALSE(chat.info().diffusion);  // no meta: an AR server as far as anyone knows
    EXPECT_EQ(chat.ar_model(), "");
}
