#include "server/api_response.h"

#include <cmath>

#include "engine/tokenizer/tokenizer.h"

namespace fdl::server {

using json = nlohmann::json;

namespace {

double round_to(double v, double scale) { return std::round(v * scale) / scale; }

json text_value(const std::string& s) {  // invalid UTF-8 (never produced, but never fatal) as U+FFFD
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

json base(const AnswerId& a, const char* object) {
    return {{"id", a.id}, {"object", object}, {"created", a.created}, {"model", a.model}};
}

}  // namespace

json error_json(const ApiError& e) {
    return {{"error",
             {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json() : json(e.param)},
              {"code", e.code.empty() ? json() : json(e.code)}}}};
}

json usage_json(const DecodeStats& st, int completion_tokens) {
    return {{"prompt_tokens", st.prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", st.prompt_tokens + completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", st.reused_tokens}}}};
}

json timings_json(const DecodeStats& st, DecodeMode decoder) {
    json j = {{"decoder", decode_mode_name(decoder)},
            {"prompt_n", st.prefilled_tokens},
            {"prompt_ms", round_to(st.prefill_seconds * 1e3, 1e3)},
            {"cached_n", st.reused_tokens},
            {"predicted_n", st.generated_tokens},
            {"predicted_ms", round_to(st.decode_seconds * 1e3, 1e3)},
            {"predicted_per_second", round_to(st.tokens_per_second(), 1e3)},
            {"request_tokens_per_second", round_to(st.request_tokens_per_second(), 1e3)},
            {"tokens_per_forward", round_to(st.tokens_per_forward(), 1e4)},
            {"forward_passes", st.nfe}};
    // The most a diffusion request with these settings can gain over AR on this machine, when the
    // model's pass costs are known (engine/decode/speedup_bound.h).
    if (st.best_case_speedup > 0) j["best_case_speedup"] = round_to(st.best_case_speedup, 1e3);
    return j;
}

json delta_chunk(const AnswerId& a, const std::string& text, bool role, const char* finish_reason) {
    json choice = {{"index", 0}, {"finish_reason", finish_reason ? json(finish_reason) : json()}, {"logprobs", nullptr}};
    if (a.chat) {
        json delta = json::object();
        if (role) delta["role"] = "assistant";
        if (!text.empty() || role) delta["content"] = text_value(text);
        choice["delta"] = delta;
        json j = base(a, "chat.completion.chunk");
        j["choices"] = json::array({choice});
        return j;
    }
    choice["text"] = text_value(text);
    json j = base(a, "text_completion");
    j["choices"] = json::array({choice});
    return j;
}

json usage_chunk(const AnswerId& a, const json& usage, const json& timings) {
    json j = base(a, a.chat ? "chat.completion.chunk" : "text_completion");
    j["choices"] = json::array();
    j["usage"] = usage;
    j["timings"] = timings;
    return j;
}

json step_json(const DecodeEvent& ev, const Tokenizer* tok) {
    json un = json::array(), text = json::array(), block = json::array();
    for (const Unmasked& u : ev.unmasked) {
        un.push_back({u.position, u.token, round_to(u.confidence, 1e4)});
        text.push_back(tok ? text_value(tok->token_bytes(u.token)) : json(""));
    }
    json block_text = json::array();
    for (int32_t t : ev.block) {
        block.push_back(t == ev.mask_token ? -1 : t);
        block_text.push_back(t == ev.mask_token || !tok ? json("") : text_value(tok->token_bytes(t)));
    }
    // A prefill step knows only the prompt's cells of the next block: the rest are undecided.
    while (int(block.size()) < ev.block_size) {
        block.push_back(-1);
        block_text.push_back("");
    }
    return {{"kind", step_kind_name(ev.step)},
            {"decoder", decode_mode_name(ev.decoder)},
            {"block_index", ev.block_index},
            {"block_start", ev.block_start},
            {"block_size", ev.block_size},
            {"sub_block_size", ev.sub_block_size},
            {"prompt_tokens", ev.prompt_len},
            {"nfe", ev.stats.nfe},
            {"unmasked", un},
            {"text", text},
            {"block", block},
            {"block_text", block_text}};
}

json step_chunk(const AnswerId& a, const json& step) {
    json j = base(a, a.chat ? "chat.completion.chunk" : "text_completion");
    j["choices"] = json::array();
    j["step"] = step;
    return j;
}

json completion_json(const AnswerId& a, const std::string& text, const char* finish_reason, const json& usage,
                     const json& timings) {
    json choice = {{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
    if (a.chat) choice["message"] = {{"role", "assistant"}, {"content", text_value(text)}};
    else choice["text"] = text_value(text);
    json j = base(a, a.chat ? "chat.completion" : "text_completion");
    j["choices"] = json::array({choice});
    j["usage"] = usage;
    j["timings"] = timings;
    return j;
}

std::string sse(const json& j) {
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace fdl::server
