// The OpenAI wire format, request side: a JSON body of /v1/chat/completions or /v1/completions
// checked field by field into an ApiRequest, or an ApiError that says which field is wrong and
// why (an OpenAI error object with status 400). No sockets here: the fuzzer and the tests call
// it directly.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat/chat_session.h"
#include "engine/decode/generate.h"

namespace fdl::server {

struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // the field at fault ("" for none)
    std::string code;
};

// What the server allows a request to ask for.
struct ApiLimits {
    int max_tokens = 4096;       // max_tokens / max_completion_tokens
    size_t max_messages = 256;
    size_t max_stop = 4;         // stop strings, as OpenAI
};

struct ApiRequest {
    bool chat = true;                    // /v1/chat/completions (else /v1/completions)
    std::string model;                   // as sent ("" when absent)
    std::vector<ChatMessage> messages;   // chat: system/user/assistant, the last from the user
    std::string prompt;                  // completions: the raw prompt
    GenerateOptions gen;                 // decoding settings: the model's defaults, then the body's
    std::vector<std::string> stop;       // stop strings (the answer ends before the first one)
    bool stream = false;
    bool include_usage = false;          // stream_options.include_usage
    bool include_steps = false;          // stream_options.include_steps: one chunk per forward pass
    bool max_tokens_set = false;
    int max_tokens = 0;                  // the answer's token limit (diffusion may decode past it)
};

// Parses and checks a request body. `defaults` are the model's decoding settings (mode, block
// size, ...); fields of the body override them. Returns an error for bad JSON, a wrong type or
// value, an unknown role, or an empty conversation.
std::optional<ApiError> parse_api_request(std::string_view body, bool chat, const GenerateOptions& defaults,
                                          const ApiLimits& limits, ApiRequest& out);

}  // namespace fdl::server
