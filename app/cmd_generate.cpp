// fastdllm generate: one prompt, text streamed to stdout, or one JSON object with --json.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/commands.h"
#include "engine/model/load_progress.h"
#include "engine/chat/chat_service.h"
#include "engine/io/clock.h"
#include "engine/io/files.h"
#include "engine/io/error.h"

namespace fdl::cli {

using json = nlohmann::json;

namespace {

// {"8": 12, "32": 5}: how many passes ran how many tokens (what a cost projection needs).
json passes_by_size_json(const DecodeStats& st) {
    json j = json::object();
    for (const auto& [tokens, count] : st.passes_by_size) j[std::to_string(tokens)] = count;
    return j;
}

json steps_json(const std::vector<StepRecord>& steps) {
    json out = json::array();
    for (const StepRecord& s : steps) {
        json j = {{"kind", step_kind_name(s.kind)}};
        if (s.kind == StepKind::Prefill) j["tokens"] = s.tokens;
        if (s.block_start >= 0 && s.kind == StepKind::Commit) j["block_start"] = s.block_start;
        if (s.next >= 0) j["next"] = s.next;
        if (s.kind != StepKind::Prefill && s.kind != StepKind::Commit) {
            json un = json::array();
            for (const Unmasked& u : s.unmasked) un.push_back({u.position, u.token, u.confidence});
            j["unmasked"] = un;
        }
        out.push_back(j);
    }
    return out;
}

}  // namespace

int cmd_generate(int argc, char** argv, int first) {
    std::string model_dir, prompt, prompt_file, system;
    std::vector<int32_t> prompt_ids;
    bool have_prompt = false, chat = false, as_json = false, trace = false, system_set = false, warmup = false;
    DecodeFlags flags;
    ArgParser p("generate", "-m DIR (-p TEXT | --prompt-ids 1,2,3 | --prompt-file FILE) [options]");
    p.add({"-m", "--model", "DIR", "model folder, or ORG/NAME in the Hugging Face cache (default: the demo dLLM in assets/)",
           [&](const std::string& v) { model_dir = v; }});
    p.add({"-p", "--prompt", "TEXT", "the prompt text", [&](const std::string& v) { prompt = v; have_prompt = true; }});
    p.add({"-f", "--prompt-file", "FILE", "read the prompt text from FILE (- reads standard input)",
           [&](const std::string& v) { prompt_file = v; have_prompt = true; }});
    p.add({"", "--prompt-ids", "IDS", "the prompt as raw token ids, e.g. 1,2,3",
           [&](const std::string& v) { prompt_ids = parse_id_list("--prompt-ids", v); }});
    p.add({"", "--chat", "", "wrap the prompt in the chat template (ChatML)", [&](const std::string&) { chat = true; }});
    p.add({"", "--system", "TEXT", "system prompt for --chat (default: the model's own, if any)",
           [&](const std::string& v) { system = v; system_set = true; }});
    add_decode_flags(p, flags);
    p.add({"", "--json", "", "print one JSON object at the end instead of streaming text",
           [&](const std::string&) { as_json = true; }});
    p.add({"", "--trace", "", "with --json: include every forward pass and the cells it decided",
           [&](const std::string&) { trace = true; }});
    p.add({"", "--warmup", "",
           "first decode the same prompt once untimed (its cache rows then dropped), so the timings are those "
           "of a warm process (threads started, buffers allocated), as in a chat; for benchmarks",
           [&](const std::string&) { warmup = true; }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help();
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "' (quote the prompt and pass it with -p)"};
    if (have_prompt == !prompt_ids.empty())
        throw UsageError{"give exactly one of -p/--prompt, --prompt-file (- for standard input) or --prompt-ids"};
    if (chat && !prompt_ids.empty()) throw UsageError{"--chat wraps text; it cannot be used with --prompt-ids"};
    if (trace && !as_json) throw UsageError{"--trace needs --json"};
    if (flags.chat_mode == ChatMode::Compare) throw UsageError{"--mode compare is a chat mode; generate takes ar or diffusion"};
    if (prompt_file == "-") {
        std::stringstream ss;
        ss << std::cin.rdbuf();
        prompt = ss.str();
    } else if (!prompt_file.empty()) {
        prompt = read_file(prompt_file);
    }
    model_dir = resolve_model_dir(model_dir);

    ChatServiceOptions so;
    so.model_dir = model_dir;
    so.weight_type = flags.dtype;
    so.progress = stderr_load_progress(model_dir);
    ChatService service(so);
    const Model& model = service.model();
    const int threads = finish_decode_flags(flags, model.config().is_diffusion, model.config().bd_size);
    GenerateOptions& opts = flags.gen;
    opts.record_steps = trace;
    if (prompt_ids.empty()) {
        if (chat) {
            if (system_set) service.set_system(system);
            std::vector<ChatMessage> msgs;
            if (!service.system().empty()) msgs.push_back({"system", service.system(), {}});
            msgs.push_back({"user", prompt, {}});
            prompt_ids = model.tokenizer().encode(render_chatml(msgs, true));
        } else {
            prompt_ids = model.tokenizer().encode(prompt);
        }
    }

    // Runs the request on the service and waits for its result; `text` streams the answer.
    auto run = [&](bool reuse_cache, bool stream_text) {
        ChatRequest req;
        req.prompt_ids = prompt_ids;
        req.gen = opts;
        req.reuse_cache = reuse_cache;
        ChatEventQueue q;
        service.submit(std::move(req), q.sink());
        std::shared_ptr<const GenerateResult> result;
        std::string error;
        for (ChatEvent e; q.wait_next(e, 3600);) {
            if (e.kind == ChatEvent::Kind::Decode && stream_text && !e.text.empty()) {
                std::fputs(e.text.c_str(), stdout);
                std::fflush(stdout);
            } else if (e.kind == ChatEvent::Kind::LaneFinished) {
                result = e.result;
                error = e.error;
            } else if (e.kind == ChatEvent::Kind::Done) {
                break;
            }
        }
        if (!error.empty() || !result) throw Error(error.empty() ? "the request did not finish" : error);
        return result;
    };
    if (warmup && !prompt_ids.empty()) {
        // The same request once, untimed; the timed one then forgets its cache rows (memory kept):
        // it recomputes everything but finds what a chat's earlier turn leaves behind, the
        // threads started and every buffer of its largest pass allocated and touched (a short
        // warm-up pass would leave the 32-token passes' first-touch page faults in the timings).
        (void)run(true, false);
    }
    const double t0 = now_seconds();
    const std::shared_ptr<const GenerateResult> result = run(!warmup, !as_json);
    const double total = now_seconds() - t0;
    const GenerateResult& r = *result;
    const DecodeStats& st = r.stats;
    if (!as_json) {
        std::fputs("\n", stdout);
        std::fprintf(stderr, "[%d tokens, %.1f tok/s, %.2f tok/forward, nfe %d, prefill %.0f ms, %s]\n",
                     st.generated_tokens, st.tokens_per_second(), st.tokens_per_forward(), st.nfe,
                     st.prefill_seconds * 1000, decode_mode_name(opts.mode));
        return 0;
    }
    json out = {
        {"model", model.config().name},
        {"mode", decode_mode_name(opts.mode)},
        {"prompt_tokens", int(prompt_ids.size())},
        {"tokens", r.tokens},
        {"text", model.tokenizer().decode(r.tokens, true)},
        {"stopped", r.stopped},
        {"nfe", st.nfe},
        {"passes", {{"prefill", st.prefill_passes}, {"block", st.block_passes}, {"subblock", st.subblock_passes},
                    {"commit", st.commit_passes}, {"decode", st.decode_passes}}},
        {"passes_by_size", passes_by_size_json(st)},
        {"timings", {{"prefill_s", st.prefill_seconds}, {"decode_s", st.decode_seconds}, {"total_s", total},
                     {"decoded_after_prefill", st.decoded_after_prefill()},
                     {"tokens_per_second", st.tokens_per_second()}, {"tokens_per_forward", st.tokens_per_forward()}}},
        {"threads", threads},
        {"warmup", warmup},
    };
    if (opts.mode == DecodeMode::Diffusion)
        out["settings"] = {{"block_size", opts.block_size}, {"sub_block_size", opts.sub_block_size},
                           {"threshold", std::round(double(opts.threshold) * 1e6) / 1e6}, {"cache", cache_mode_name(opts.cache)}, {"unmask", unmask_order_name(opts.unmask)}};
    out["sampling"] = {{"temperature", std::round(double(opts.sampling.temperature) * 1e6) / 1e6},
                       {"top_p", std::round(double(opts.sampling.top_p) * 1e6) / 1e6},
                       {"top_k", opts.sampling.top_k}, {"seed", opts.sampling.seed}};
    if (trace) out["steps"] = steps_json(r.steps);
    std::cout << out.dump() << "\n";
    return 0;
}

}  // namespace fdl::cli
