// Autoregressive decoding: causal mask, standard KV cache, one token per forward pass.
#include <vector>

#include "engine/decode/decode_util.h"
#include "engine/decode/decoder.h"
#include "engine/io/error.h"

namespace fdl {

GenerateResult decode_ar(Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                           const GenerateOptions& opts, const EventCallback& on_event,
                           const std::atomic<bool>* cancel) {
    const int L = int(prompt.size()), vocab = model.config().vocab_size;
    const auto stops = stop_tokens_of(model, opts);
    Sampler sampler(opts.sampling, vocab, model.mask_token_id(), first_untokenized_id(model));
    std::vector<float> logits(static_cast<size_t>(vocab));
    GenerateResult res;
    DecodeStats& st = res.stats;
    st.prompt_tokens = L;

    // Reuse the cached rows of an earlier causal request that match the prompt; at least the last
    // prompt token is run again, because its logits give the first new token.
    int reuse = cache.mask_block == 0 ? common_prefix(cache.tokens, prompt) : 0;
    reuse = std::min(reuse, L - 1);
    cache.tokens.resize(size_t(reuse));
    cache.mask_block = 0;
    cache.reserve(L + opts.max_new_tokens + 1);
    st.reused_tokens = reuse;

    DecodeEvent ev;
    ev.decoder = DecodeMode::AR;
    ev.block_size = 1;
    ev.prompt_len = L;
    ev.mask_token = model.mask_token_id();
    auto emit = [&](DecodeEvent::Type type) {
        if (!on_event) return;
        ev.type = type;
        ev.stats = st;
        on_event(ev);
    };
    emit(DecodeEvent::Type::Started);

    const double t0 = now_seconds();
    Pass p{prompt.data() + reuse, L - reuse, reuse, L, AttnMask::Causal, 0, L - reuse - 1, 1};
    forward_pass(model, opts, cache, p, logits.data());
    st.passes_by_size[p.n]++;
    cache.tokens.assign(prompt.begin(), prompt.end());
    st.nfe = st.prefill_passes = 1;
    st.prefilled_tokens = L - reuse;
    const double t1 = now_seconds();
    st.prefill_seconds = t1 - t0;

    StepKind kind = StepKind::Prefill;
    for (;;) {
        const Pick pk = sampler.pick(logits.data());
        const int pos = L + int(res.tokens.size());
        res.tokens.push_back(pk.token);
        st.generated_tokens = int(res.tokens.size());
        if (kind == StepKind::Prefill) st.prefill_generated = 1;
        st.decode_seconds = now_seconds() - t1;
        st.prefix_cache_len = int(cache.tokens.size());
        if (opts.record_steps) {
            StepRecord r{kind, {{pos, pk.token, pk.confidence}}, kind == StepKind::Prefill ? L - reuse : 1, -1, -1};
            res.steps.push_back(std::move(r));
        }
        ev.step = kind;
        ev.block_start = pos;
        ev.block = {pk.token};
        ev.unmasked = {{pos, pk.token, pk.confidence}};
        emit(DecodeEvent::Type::Step);
        if (is_stop(stops, pk.token)) { res.stopped = true; break; }
        if (int(res.tokens.size()) >= opts.max_new_tokens) break;
        if (cancel && cancel->load()) { res.cancelled = true; break; }
        Pass d{&res.tokens.back(), 1, pos, pos + 1, AttnMask::Causal, 0, 0, 1};
        forward_pass(model, opts, cache, d, logits.data());
        st.passes_by_size[1]++;
        cache.tokens.push_back(pk.token);
        st.nfe++;
        st.decode_passes++;
        kind = StepKind::Decode;
    }
    st.decode_seconds = now_seconds() - t1;
    st.prefix_cache_len = int(cache.tokens.size());
    ev.unmasked.clear();
    ev.cancelled = res.cancelled;
    ev.stopped = res.stopped;
    emit(DecodeEvent::Type::Finished);
    return res;
}

}  // namespace fdl
