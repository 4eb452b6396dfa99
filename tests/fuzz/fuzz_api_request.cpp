// The request bodies of `fastdllm serve` (server/api_request.h) and everything the server builds
// from an accepted one (server/api_response.h, server/stop_strings.h). The input is a request
// body; its own bytes, read cyclically, pick the synthetic figures and the cuts of the streamed
// text. Each body is parsed four times: as a chat and as a completion request, with the
// decoding defaults of a diffusion model (default limits) and of an AR model (small limits).
// Properties:
//   - an accepted request's decoding settings pass GenerateOptions::validate(); a chat ends with
//     the user's message and has a system message only first; the token, message and
//     stop-string limits hold; a refused one gives a 400 error object that dumps;
//   - every response object (delta, usage, step and completion chunks, with the raw input as
//     the answer's text too) dumps without throwing, and its server-sent event is one line of
//     valid JSON;
//   - an answer (the request's text followed by pieces of its stop strings) cut at the stop
//     strings by server::StopStrings, fed in pieces of whole characters and again as tokens of
//     the tiny fixture's tokenizer through a TextStream, as the server feeds it: what comes out
//     is whole UTF-8 characters, and all of it together is exactly the answer up to the first
//     occurrence of any stop string, however the answer was cut.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/decode/decode_events.h"
#include "engine/decode/generate.h"
#include "engine/decode/text_stream.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "fuzz_util.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/stop_strings.h"

namespace {

using fdl::DecodeEvent;
using fdl::DecodeMode;
using fdl::GenerateOptions;
namespace srv = fdl::server;

const fdl::Tokenizer& tiny_tokenizer() {
    static const fdl::Tokenizer tok = fdl::Tokenizer::from_model_dir(FIXTURES_DIR "/tiny/model");
    return tok;
}

// The model defaults the server starts from (ChatService::default_options).
GenerateOptions model_defaults(bool diffusion) {
    GenerateOptions g;
    g.mode = diffusion ? DecodeMode::Diffusion : DecodeMode::AR;
    g.block_size = 32;
    g.sub_block_size = 8;
    g.record_steps = false;
    return g;
}

// The input's bytes, read cyclically: the figures and cuts the input chooses.
struct Bytes {
    const uint8_t* data;
    size_t size;
    size_t at = 0;
    uint8_t next() { return size ? data[at++ % size] : 0; }
    uint32_t next32() {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) v = v << 8 | next();
        return v;
    }
};

// The text up to the first occurrence of any stop string.
std::string cut_at_stops(const std::string& text, const std::vector<std::string>& stops) {
    size_t first = std::string::npos;
    for (const std::string& s : stops) first = std::min(first, text.find(s));
    return first == std::string::npos ? text : text.substr(0, first);
}

bool at_boundary(const std::string& s, size_t i) { return i >= s.size() || (uint8_t(s[i]) & 0xC0) != 0x80; }

// Feeds `pieces` to a StopStrings and checks what comes out against cut_at_stops.
void check_stops(const std::vector<std::string>& pieces, const std::vector<std::string>& stops) {
    srv::StopStrings ss(stops);
    std::string text, sent;
    for (const std::string& p : pieces) {
        text += p;
        const bool was_hit = ss.hit();
        const std::string out = ss.push(p);
        if (was_hit) FUZZ_CHECK(out.empty());
        FUZZ_CHECK(fdl::tok::is_valid_utf8(out));  // no piece ends inside a character
        sent += out;
    }
    const std::string rest = ss.finish();
    FUZZ_CHECK(fdl::tok::is_valid_utf8(rest));
    sent += rest;
    const std::string expected = cut_at_stops(text, stops);
    FUZZ_CHECK(sent == expected);
    FUZZ_CHECK(ss.hit() == (expected.size() < text.size()));
    for (const std::string& s : stops) FUZZ_CHECK(sent.find(s) == std::string::npos);
}

// The text in pieces of 1..16 bytes, each moved on to the next character boundary.
std::vector<std::string> pieces_of(const std::string& text, Bytes& b) {
    std::vector<std::string> pieces;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = std::min(text.size(), i + 1 + b.next() % 16);
        while (!at_boundary(text, j)) j++;
        if (b.next() % 8 == 0) pieces.emplace_back();  // an empty piece now and then
        pieces.push_back(text.substr(i, j - i));
        i = j;
    }
    return pieces;
}

// The text as tokens of the tiny tokenizer (and a few ids from the input, valid or not), decided
// a few cells at a time as decoding events, through a TextStream as the server runs it.
std::vector<std::string> pieces_through_text_stream(const std::string& text, Bytes& b) {
    const fdl::Tokenizer& tok = tiny_tokenizer();
    std::vector<int32_t> ids = tok.encode(text);
    for (int n = b.next() % 8; n > 0; n--) ids.push_back(int32_t(b.next32() % uint32_t(tok.size() + 8)) - 4);
    fdl::TextStream ts(&tok, {});
    std::vector<std::string> pieces;
    DecodeEvent ev;
    ev.type = DecodeEvent::Type::Started;
    ev.prompt_len = 7;
    pieces.push_back(ts.on_event(ev));
    ev.type = DecodeEvent::Type::Step;
    for (size_t i = 0; i < ids.size();) {
        ev.unmasked.clear();
        for (size_t n = 1 + b.next() % 4; n > 0 && i < ids.size(); n--, i++)
            ev.unmasked.push_back({int32_t(7 + i), ids[i], 0.5f});
        pieces.push_back(ts.on_event(ev));
    }
    ev.type = DecodeEvent::Type::Finished;
    ev.unmasked.clear();
    pieces.push_back(ts.on_event(ev));
    for (const std::string& p : pieces) FUZZ_CHECK(fdl::tok::is_valid_utf8(p));
    return pieces;
}

// A response object: dumps without throwing; its server-sent event is one line of valid JSON.
void check_json(const nlohmann::json& j) {
    std::string dumped;
    try {
        dumped = j.dump();
    } catch (const nlohmann::json::exception& e) {
        std::fprintf(stderr, "dump threw: %s\n", e.what());
        FUZZ_CHECK(false);
    }
    const std::string ev = srv::sse(j);
    FUZZ_CHECK(ev.rfind("data: ", 0) == 0 && ev.size() >= 8 && ev.compare(ev.size() - 2, 2, "\n\n") == 0);
    const std::string payload = ev.substr(6, ev.size() - 8);
    FUZZ_CHECK(payload.find('\n') == std::string::npos && payload.find('\r') == std::string::npos);
    FUZZ_CHECK(!nlohmann::json::parse(payload, nullptr, false).is_discarded());
}

fdl::DecodeStats stats_from(Bytes& b) {
    fdl::DecodeStats st;
    st.prompt_tokens = int(b.next32() % 100000);
    st.reused_tokens = int(b.next32() % 100000);
    st.prefilled_tokens = int(b.next32() % 100000);
    st.generated_tokens = int(b.next32() % 5000);
    st.prefill_generated = b.next() & 1;
    st.nfe = int(b.next32() % 5000);
    st.prefill_passes = b.next() % 3;
    const uint8_t k = b.next();
    st.prefill_seconds = k & 1 ? 0 : b.next32() * 1e-6;
    st.decode_seconds = k & 2 ? 0 : b.next32() * 1e-6;
    return st;
}

// One forward pass as a decoder reports it, with cells and ids chosen by the input (ids outside
// the vocabulary, negative ones and NaN confidences included).
DecodeEvent step_event(const srv::ApiRequest& r, Bytes& b) {
    DecodeEvent ev;
    ev.type = DecodeEvent::Type::Step;
    ev.decoder = r.gen.mode;
    ev.step = fdl::StepKind(b.next() % 5);
    ev.block_size = r.gen.mode == DecodeMode::AR ? 1 : r.gen.block_size;
    ev.sub_block_size = r.gen.sub_block_size;
    ev.prompt_len = int(b.next32() % 4096);
    ev.block_index = int(b.next() % 8) - 1;
    ev.block_start = ev.prompt_len + ev.block_size * std::max(ev.block_index, 0);
    ev.mask_token = int32_t(b.next32() % 600);
    const int cells = std::min(ev.block_size, 16) - int(b.next() % 3);  // a prefill knows fewer cells
    for (int i = 0; i < std::max(cells, 0); i++) {
        const int32_t t = b.next() % 4 == 0 ? ev.mask_token : int32_t(b.next32() % 700) - 50;
        ev.block.push_back(t);
        if (t != ev.mask_token && b.next() % 2) {
            uint32_t bits = b.next32();
            float conf;
            std::memcpy(&conf, &bits, sizeof conf);
            if (b.next() % 2) conf = float(bits % 10001) / 10000;
            ev.unmasked.push_back({ev.block_start + i, t, conf});
        }
    }
    ev.stats = stats_from(b);
    return ev;
}

// The request itself; returns the text an answer is made of in check_outputs.
std::string check_request(const srv::ApiRequest& r, bool chat, const srv::ApiLimits& lim) {
    try {
        r.gen.validate();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "accepted settings fail validate(): %s\n", e.what());
        FUZZ_CHECK(false);
    }
    FUZZ_CHECK(r.chat == chat);
    FUZZ_CHECK(!r.gen.record_steps);
    FUZZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= r.gen.max_new_tokens);
    if (r.max_tokens_set) FUZZ_CHECK(r.max_tokens <= lim.max_tokens);
    FUZZ_CHECK(r.stop.size() <= std::max<size_t>(lim.max_stop, 1));
    for (const std::string& s : r.stop) FUZZ_CHECK(!s.empty() && fdl::tok::is_valid_utf8(s));
    FUZZ_CHECK(fdl::tok::is_valid_utf8(r.model));
    if (!chat) {
        FUZZ_CHECK(r.messages.empty() && !r.prompt.empty() && fdl::tok::is_valid_utf8(r.prompt));
        return r.prompt;
    }
    FUZZ_CHECK(!r.messages.empty() && r.messages.size() <= lim.max_messages);
    FUZZ_CHECK(r.messages.back().role == "user");
    for (size_t i = 0; i < r.messages.size(); i++) {
        const std::string& role = r.messages[i].role;
        FUZZ_CHECK(role == "user" || role == "assistant" || (role == "system" && i == 0));
        FUZZ_CHECK(fdl::tok::is_valid_utf8(r.messages[i].content));
    }
    return r.messages.back().content;
}

// What the server sends for an accepted request (once per input: the objects do not depend on
// the model's defaults).
void check_outputs(const srv::ApiRequest& r, const std::string& request_text, const uint8_t* data, size_t size) {
    // The response objects, with the request's text and with the raw input (not UTF-8) as the answer.
    Bytes b{data, size};
    const srv::AnswerId a{r.chat ? "chatcmpl-00000000000000ff" : "cmpl-00000000000000ff", 1733000000, r.model, r.chat};
    const std::string text = request_text.substr(0, 256);  // (may cut a character: text_value repairs it)
    const std::string raw(reinterpret_cast<const char*>(data), std::min<size_t>(size, 128));
    const fdl::DecodeStats st = stats_from(b);
    const nlohmann::json usage = srv::usage_json(st, int(b.next32() % 5000));
    const nlohmann::json timings = srv::timings_json(st, r.gen.mode);
    for (const std::string* t : std::initializer_list<const std::string*>{&text, &raw}) {
        check_json(srv::delta_chunk(a, *t, b.next() % 2, nullptr));
        check_json(srv::completion_json(a, *t, b.next() % 2 ? "stop" : "length", usage, timings));
    }
    check_json(srv::delta_chunk(a, "", false, b.next() % 2 ? "stop" : "length"));
    check_json(srv::usage_chunk(a, usage, timings));
    const DecodeEvent ev = step_event(r, b);
    const nlohmann::json step = srv::step_json(ev, b.next() % 4 ? &tiny_tokenizer() : nullptr);
    FUZZ_CHECK(step["block"].size() >= size_t(ev.block_size));
    FUZZ_CHECK(step["unmasked"].size() == ev.unmasked.size() && step["text"].size() == ev.unmasked.size());
    check_json(srv::step_chunk(a, step));

    // The stop strings on the streamed text: the request's text (whole characters, up to 256
    // bytes), then a few pieces of the stop strings themselves, so that whole, partial and
    // overlapping occurrences are common.
    size_t n = std::min<size_t>(request_text.size(), 256);
    while (!at_boundary(request_text, n)) n++;
    std::string answer = request_text.substr(0, n);
    for (int k = r.stop.empty() ? 0 : b.next() % 6; k > 0; k--) {
        const std::string& s = r.stop[b.next() % r.stop.size()];
        size_t from = b.next() % (s.size() + 1), to = from + b.next() % (s.size() + 1 - from);
        while (!at_boundary(s, from)) from++;
        while (!at_boundary(s, to)) to++;
        if (from < to) answer += s.substr(from, to - from);
    }
    check_stops(pieces_of(answer, b), r.stop);
    check_stops({answer}, r.stop);
    check_stops(pieces_through_text_stream(answer, b), r.stop);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    const srv::ApiLimits big;
    srv::ApiLimits small;
    small.max_tokens = 64;
    small.max_messages = 4;
    small.max_stop = 2;
    bool checked_outputs = false;
    for (bool diffusion : {true, false}) {
        const srv::ApiLimits& lim = diffusion ? big : small;
        for (bool chat : {true, false}) {
            srv::ApiRequest r;
            if (auto e = srv::parse_api_request(body, chat, model_defaults(diffusion), lim, r)) {
                FUZZ_CHECK(e->status == 400 && !e->message.empty());
                check_json(srv::error_json(*e));
                continue;
            }
            const std::string text = check_request(r, chat, lim);
            if (!checked_outputs) check_outputs(r, text, data, size);
            checked_outputs = true;
        }
    }
    return 0;
}
