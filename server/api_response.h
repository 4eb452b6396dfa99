// The OpenAI wire format, response side: completion objects, stream chunks, the usage and timing
// figures, the step chunks that carry the decoding itself, and error objects.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "engine/decode/decode_events.h"
#include "server/api_request.h"

namespace fdl {
class Tokenizer;
}

namespace fdl::server {

// What identifies one answer in every object sent for it.
struct AnswerId {
    std::string id;       // "chatcmpl-..." or "cmpl-..."
    int64_t created = 0;  // Unix seconds
    std::string model;
    bool chat = true;
};

nlohmann::json error_json(const ApiError& e);

// usage: prompt, completion and total tokens; timings: what the decoder measured.
nlohmann::json usage_json(const DecodeStats& st, int completion_tokens);
nlohmann::json timings_json(const DecodeStats& st, DecodeMode decoder);

// A stream chunk with a text delta (`role` true for the first chunk of a chat answer), or with a
// finish reason and no text.
nlohmann::json delta_chunk(const AnswerId& a, const std::string& text, bool role, const char* finish_reason);
// The last chunk of a stream when the client asked for usage: no choices, usage and timings.
nlohmann::json usage_chunk(const AnswerId& a, const nlohmann::json& usage, const nlohmann::json& timings);
// One forward pass: {"kind", "decoder", "block_start", "block_size", "sub_block_size",
// "prompt_tokens", "nfe", "unmasked": [[position, token id, confidence]...], "text": [the
// unmasked tokens' text], "block": [the block's token ids, -1 for a masked cell], "block_text":
// [their text, "" for a masked cell]}.
nlohmann::json step_json(const DecodeEvent& ev, const Tokenizer* tok);
nlohmann::json step_chunk(const AnswerId& a, const nlohmann::json& step);
// The whole answer (no streaming).
nlohmann::json completion_json(const AnswerId& a, const std::string& text, const char* finish_reason,
                               const nlohmann::json& usage, const nlohmann::json& timings);

// "data: <json>\n\n", the server-sent event that carries one chunk.
std::string sse(const nlohmann::json& j);

}  // namespace fdl::server
