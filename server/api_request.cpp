#include "server/api_request.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace fdl::server {

using json = nlohmann::json;

namespace {

ApiError field_error(const std::string& param, const std::string& message) {
    ApiError e;
    e.param = param;
    e.message = message;
    return e;
}

// A message's content: a string, or OpenAI's list of parts of which only text parts are read.
std::optional<ApiError> content_text(const json& c, const std::string& where, std::string& out) {
    if (c.is_string()) {
        out = c.get<std::string>();
        return std::nullopt;
    }
    if (c.is_array()) {
        out.clear();
        for (const json& part : c) {
            if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
                !part["text"].is_string())
                return field_error(where, "only text content is supported (parts of type \"text\")");
            out += part["text"].get<std::string>();
        }
        return std::nullopt;
    }
    if (c.is_null()) {
        out.clear();
        return std::nullopt;
    }
    return field_error(where, "content must be a string or a list of text parts");
}

}  // namespace

std::optional<ApiError> parse_api_request(std::string_view body, bool chat, const GenerateOptions& defaults,
                                          const ApiLimits& limits, ApiRequest& out) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return field_error("", "the request body is not valid JSON");
    if (!j.is_object()) return field_error("", "the request body must be a JSON object");
    out = ApiRequest{};
    out.chat = chat;
    out.gen = defaults;
    GenerateOptions& g = out.gen;

    auto number = [&](const char* key, double lo, double hi, double& v) -> std::optional<ApiError> {
        const json& x = j[key];
        if (!x.is_number()) return field_error(key, std::string(key) + " must be a number");
        v = x.get<double>();
        if (!(v >= lo && v <= hi))
            return field_error(key, std::string(key) + " must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]");
        return std::nullopt;
    };
    auto integer = [&](const char* key, int64_t lo, int64_t hi, int64_t& v) -> std::optional<ApiError> {
        const json& x = j[key];
        if (!x.is_number_integer()) return field_error(key, std::string(key) + " must be an integer");
        v = x.get<int64_t>();
        if (x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(INT64_MAX)) v = INT64_MAX;
        if (v < lo || v > hi)
            return field_error(key, std::string(key) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        return std::nullopt;
    };
    auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };

    if (has("model")) {
        if (!j["model"].is_string()) return field_error("model", "model must be a string");
        out.model = j["model"].get<std::string>();
    }
    if (chat) {
        if (!j.contains("messages") || !j["messages"].is_array())
            return field_error("messages", "messages must be a list of {role, content} objects");
        const json& msgs = j["messages"];
        if (msgs.empty()) return field_error("messages", "messages is empty");
        if (msgs.size() > limits.max_messages)
            return field_error("messages", "at most " + std::to_string(limits.max_messages) + " messages");
        for (size_t i = 0; i < msgs.size(); i++) {
            const std::string where = "messages[" + std::to_string(i) + "]";
            const json& m = msgs[i];
            if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
                return field_error(where, where + " needs a role");
            std::string role = m["role"].get<std::string>();
            if (role == "developer") role = "system";  // OpenAI's newer name for the system role
            if (role != "system" && role != "user" && role != "assistant")
                return field_error(where + ".role", "unknown role \"" + role + "\" (system, user or assistant)");
            if (role == "system" && i != 0) return field_error(where + ".role", "a system message must come first");
            std::string text;
            // By reference: a copy of the content would recurse as deep as it nests (a body of
            // nested lists overflowed the connection thread's stack).
            static const json no_content;
            const json& content = m.contains("content") ? m["content"] : no_content;
            if (auto e = content_text(content, where + ".content", text)) return e;
            out.messages.push_back({role, std::move(text), {}});
        }
        if (out.messages.back().role != "user")
            return field_error("messages", "the last message must be the user's");
    } else {
        if (!j.contains("prompt")) return field_error("prompt", "prompt is required");
        const json& p = j["prompt"];
        if (p.is_string()) out.prompt = p.get<std::string>();
        else if (p.is_array() && p.size() == 1 && p[0].is_string()) out.prompt = p[0].get<std::string>();
        else return field_error("prompt", "prompt must be a string");
        if (out.prompt.empty()) return field_error("prompt", "prompt is empty");
    }

    // Decoding settings the model does not fix: extra fields of this server (see docs/server.md).
    if (has("mode")) {
        if (!j["mode"].is_string() || !parse_decode_mode(j["mode"].get<std::string>(), g.mode))
            return field_error("mode", "mode must be \"ar\" or \"diffusion\"");
    }
    int64_t v = 0;
    double d = 0;
    if (has("block_size")) {
        if (auto e = integer("block_size", 1, 1024, v)) return e;
        g.block_size = int(v);
    }
    if (has("sub_block_size")) {
        if (auto e = integer("sub_block_size", 1, 1024, v)) return e;
        g.sub_block_size = int(v);
    }
    if (has("threshold")) {
        if (auto e = number("threshold", 0, 1, d)) return e;
        g.threshold = float(d);
    }
    if (has("cache")) {
        if (!j["cache"].is_string() || !parse_cache_mode(j["cache"].get<std::string>(), g.cache))
            return field_error("cache", "cache must be none, prefix, dual or dual-overlap");
    }
    if (has("unmask")) {
        if (!j["unmask"].is_string() || !parse_unmask_order(j["unmask"].get<std::string>(), g.unmask))
            return field_error("unmask", "unmask must be confidence or prefix");
    }

    // OpenAI's fields.
    for (const char* key : {"max_completion_tokens", "max_tokens"}) {
        if (!has(key)) continue;
        if (auto e = integer(key, 1, limits.max_tokens, v)) return e;
        g.max_new_tokens = int(v);
        out.max_tokens_set = true;
        break;
    }
    if (has("temperature")) {
        if (auto e = number("temperature", 0, 2, d)) return e;
        g.sampling.temperature = float(d);
    }
    if (has("top_p")) {
        if (auto e = number("top_p", 0, 1, d)) return e;
        if (d <= 0) return field_error("top_p", "top_p must be in (0, 1]");
        g.sampling.top_p = float(d);
    }
    if (has("top_k")) {
        if (auto e = integer("top_k", 0, 1 << 30, v)) return e;
        g.sampling.top_k = int(v);
    }
    if (has("seed")) {
        if (!j["seed"].is_number_integer()) return field_error("seed", "seed must be an integer");
        g.sampling.seed = j["seed"].is_number_unsigned() ? j["seed"].get<uint64_t>() : uint64_t(j["seed"].get<int64_t>());
    }
    if (has("n")) {
        if (auto e = integer("n", 1, 1, v)) return field_error("n", "only n = 1 is supported");
    }
    if (has("stop")) {
        const json& s = j["stop"];
        if (s.is_string()) {
            out.stop.push_back(s.get<std::string>());
        } else if (s.is_array()) {
            if (s.size() > limits.max_stop)
                return field_error("stop", "at most " + std::to_string(limits.max_stop) + " stop strings");
            for (const json& x : s) {
                if (!x.is_string()) return field_error("stop", "stop must be a string or a list of strings");
                out.stop.push_back(x.get<std::string>());
            }
        } else {
            return field_error("stop", "stop must be a string or a list of strings");
        }
        for (const std::string& x : out.stop)
            if (x.empty()) return field_error("stop", "a stop string is empty");
    }
    if (has("stream")) {
        if (!j["stream"].is_boolean()) return field_error("stream", "stream must be true or false");
        out.stream = j["stream"].get<bool>();
    }
    if (has("stream_options")) {
        const json& so = j["stream_options"];
        if (!so.is_object()) return field_error("stream_options", "stream_options must be an object");
        for (const char* key : {"include_usage", "include_steps"}) {
            if (!so.contains(key) || so[key].is_null()) continue;
            if (!so[key].is_boolean()) return field_error(std::string("stream_options.") + key, std::string(key) + " must be true or false");
            (std::string(key) == "include_usage" ? out.include_usage : out.include_steps) = so[key].get<bool>();
        }
    }

    out.max_tokens = g.max_new_tokens;
    // Diffusion decodes whole blocks: a shorter answer limit decodes one block and is cut.
    if (g.mode == DecodeMode::Diffusion && g.max_new_tokens < g.block_size) g.max_new_tokens = g.block_size;
    g.record_steps = false;
    try {
        g.validate();
    } catch (const std::exception& e) {
        return field_error("", e.what());
    }
    return std::nullopt;
}

}  // namespace fdl::server
