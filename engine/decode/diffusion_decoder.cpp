// Fast-dLLM v2 block-diffusion decoding, exactly as docs/design.md describes it:
// block-causal prefill, blocks of B cells filled sub-block by sub-block with threshold-parallel
// unmasking, a block-level prefix cache, the sub-block DualCache, and stop-token early exit.
#include <vector>

#include "engine/decode/decode_util.h"
#include "engine/decode/decoder.h"
#include "engine/io/error.h"

namespace fdl {

namespace {

struct DiffusionRun {
    Model& model;
    KVCache& cache;
    const GenerateOptions& opts;
    const EventCallback& on_event;
    const std::atomic<bool>* cancel;

    const int B, S;
    const int32_t M;  // mask token
    const int L;      // prompt length
    std::vector<int32_t> stops;
    std::vector<int32_t> seq;
    std::vector<float> logits;
    Sampler sampler;
    GenerateResult res;
    DecodeEvent ev;
    int Lc = 0;        // committed rows of the prefix cache
    double t_decode0 = 0;

    DiffusionRun(Model& m, KVCache& c, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                 const EventCallback& cb, const std::atomic<bool>* cn)
        : model(m), cache(c), opts(o), on_event(cb), cancel(cn), B(o.block_size), S(o.sub_block_size),
          M(m.mask_token_id()), L(int(prompt.size())), stops(stop_tokens_of(m, o)), seq(prompt),
          sampler(o.sampling, m.config().vocab_size, m.mask_token_id(), first_untokenized_id(m)) {}

    bool cancelled() const { return cancel && cancel->load(); }

    // The stop token is "finished" once it is decided and no undecided cell precedes it.
    bool stop_finished() const {
        for (size_t p = size_t(L); p < seq.size(); p++) {
            if (seq[p] == M) return false;
            if (is_stop(stops, seq[p])) return true;
        }
        return false;
    }

    int decided_generated() const {
        int n = 0;
        for (size_t p = size_t(L); p < seq.size(); p++) n += seq[p] != M;
        return n;
    }

    void emit(DecodeEvent::Type type, int block_start) {
        if (!on_event) return;
        ev.type = type;
        ev.block_start = block_start;
        ev.block.assign(seq.begin() + std::min<size_t>(size_t(block_start), seq.size()),
                        seq.begin() + std::min<size_t>(size_t(block_start + B), seq.size()));
        ev.stats = res.stats;
        on_event(ev);
    }

    void record(StepKind kind, std::vector<Unmasked> un, int tokens, int32_t next, int block_start) {
        DecodeStats& st = res.stats;
        st.nfe++;
        switch (kind) {
            case StepKind::Prefill: st.prefill_passes++; break;
            case StepKind::Block: st.block_passes++; break;
            case StepKind::SubBlock: st.subblock_passes++; break;
            case StepKind::Commit: st.commit_passes++; break;
            case StepKind::Decode: break;
        }
        st.generated_tokens = decided_generated();
        st.prefix_cache_len = Lc;
        if (kind != StepKind::Prefill) st.decode_seconds = now_seconds() - t_decode0;
        ev.step = kind;
        ev.unmasked = un;
        if (opts.record_steps) res.steps.push_back({kind, std::move(un), tokens, next, block_start});
        emit(DecodeEvent::Type::Step, ev.block_start);
    }

    void forward(const Pass& p) {
        forward_pass(model, opts, cache, p, logits.data());
        res.stats.passes_by_size[p.n]++;
    }

    // One pass over the whole block [bs, bs+B) attending to the prefix (or, without a cache, over
    // everything up to the block's end); logits for `count` positions from `first_row_pos`.
    void full_pass(int bs, int first_row_pos, int count) {
        const bool recompute = opts.cache == CacheMode::None;
        const int pos0 = recompute ? 0 : bs;
        Pass p{seq.data() + pos0, bs + B - pos0, pos0, bs + B, AttnMask::BlockCausal, B, first_row_pos - pos0, count};
        forward(p);
    }

    void prefill(int reuse) {
        const int full = (L / B) * B;
        if (full <= reuse) return;
        const double t0 = now_seconds();
        const bool want_next = L % B == 0;
        Pass p{seq.data() + reuse, full - reuse, reuse, full, AttnMask::BlockCausal, B, full - reuse - 1, want_next ? 1 : 0};
        forward(p);
        Lc = full;
        if (opts.cache != CacheMode::None) cache.tokens.assign(seq.begin(), seq.begin() + full);
        res.stats.prefilled_tokens = full - reuse;
        int32_t next = -1;
        std::vector<Unmasked> un;
        if (want_next) {
            const Pick pk = sampler.pick(logits.data());
            next = pk.token;
            seq.push_back(next);
            un.push_back({full, next, pk.confidence});
            res.stats.prefill_generated = 1;
        }
        res.stats.prefill_seconds = now_seconds() - t0;
        ev.block_start = full;
        record(StepKind::Prefill, std::move(un), full - reuse, next, -1);
    }

    // Fills the masked cells of sub-block [s0, s0+S) until none is left (or the stop is finished).
    // Returns false when cancelled.
    bool decode_sub_block(int bs, int s0, bool& dual_filled) {
        const int s1 = s0 + S;
        const int V = model.config().vocab_size;
        for (;;) {
            // The span of masked cells. Position p is predicted by the logits of position p - 1
            // (the AR token shift), so only rows [first - 1, last - 1] are asked for: the model
            // skips the others' lm_head and last-layer MLP.
            int first = s1, last = s0;
            for (int p = s0; p < s1; p++)
                if (seq[size_t(p)] == M) { first = std::min(first, p); last = p; }
            if (first == s1 || stop_finished()) break;
            if (cancelled()) return false;
            const int row0 = first - 1, count = last - first + 1;  // row0: logits row 0's position
            StepKind kind;
            if (dual_filled && seq[size_t(s0)] != M) {
                // DualCache: run only this sub-block; its fresh K/V overwrite its rows of the block.
                kind = StepKind::SubBlock;
                Pass p{seq.data() + s0, S, s0, bs + B, AttnMask::Full, 0, row0 - s0, count};
                forward(p);
            } else if (dual_filled && opts.cache == CacheMode::DualOverlap && s0 > bs) {
                // The first cell is predicted by the row before it: run the previous (finished)
                // sub-block too, so its rows are fresh as a full pass would make them.
                kind = StepKind::SubBlock;
                Pass p{seq.data() + s0 - S, 2 * S, s0 - S, bs + B, AttnMask::Full, 0, row0 - (s0 - S), count};
                forward(p);
            } else {
                kind = StepKind::Block;
                full_pass(bs, row0, count);  // row0 >= bs: the block's first cell is never masked
                dual_filled = opts.cache == CacheMode::Dual || opts.cache == CacheMode::DualOverlap;
            }
            std::vector<Unmasked> cand;
            for (int p = s0; p < s1; p++) {
                if (seq[size_t(p)] != M) continue;
                const Pick pk = sampler.pick(logits.data() + size_t(p - 1 - row0) * V);
                cand.push_back({p, pk.token, pk.confidence});
            }
            std::vector<Unmasked> un;
            auto decide = [&](const Unmasked& u) {
                seq[size_t(u.position)] = u.token;
                un.push_back(u);
            };
            if (opts.unmask == UnmaskOrder::Prefix) {  // cand is in position order
                for (size_t i = 0; i < cand.size() && (i == 0 || cand[i].confidence > opts.threshold); i++) decide(cand[i]);
            } else {
                size_t best = 0;
                for (size_t i = 1; i < cand.size(); i++)
                    if (cand[i].confidence > cand[best].confidence) best = i;
                for (size_t i = 0; i < cand.size(); i++)
                    if (i == best || cand[i].confidence > opts.threshold) decide(cand[i]);
            }
            record(kind, std::move(un), 0, -1, bs);
        }
        return true;
    }

    GenerateResult run() {
        if (M < 0) throw Error(model.config().name + ": diffusion decoding needs a |<MASK>| token in the tokenizer");
        DecodeStats& st = res.stats;
        st.prompt_tokens = L;
        ev.decoder = DecodeMode::Diffusion;
        ev.block_size = B;
        ev.sub_block_size = S;
        ev.prompt_len = L;
        ev.mask_token = M;
        logits.resize(size_t(B) * model.config().vocab_size);

        // Rows of an earlier request (same block mask, same tokens, whole blocks) are reused. When
        // the prompt ends on a block boundary its last block is run again for the first new token.
        int reuse = 0;
        if (opts.cache != CacheMode::None && cache.mask_block == B) {
            reuse = std::min(common_prefix(cache.tokens, seq), (L / B) * B) / B * B;
            if (L % B == 0 && reuse == L) reuse -= B;
        }
        cache.tokens.resize(size_t(reuse));
        cache.mask_block = B;
        cache.reserve(L + opts.max_new_tokens + 2 * B);
        st.reused_tokens = reuse;
        Lc = reuse;
        emit(DecodeEvent::Type::Started, 0);

        prefill(reuse);
        t_decode0 = now_seconds();
        const int nblocks = opts.max_new_tokens / B;
        for (int b = 0; b < nblocks && !res.cancelled; b++) {
            const int bs = int(seq.size()) / B * B;
            seq.resize(size_t(bs + B), M);
            ev.block_index = b;
            emit(DecodeEvent::Type::BlockStarted, bs);
            bool dual_filled = false;  // the DualCache is reset at every block
            for (int s0 = bs; s0 < bs + B && !stop_finished(); s0 += S) {
                if (!decode_sub_block(bs, s0, dual_filled)) {
                    res.cancelled = true;
                    break;
                }
            }
            if (res.cancelled || stop_finished()) break;
            if (cancelled()) { res.cancelled = true; break; }
            // Commit: the finished block once more, its K/V appended to the prefix cache.
            full_pass(bs, bs + B - 1, 1);
            const Pick pk = sampler.pick(logits.data());
            Lc = bs + B;
            if (opts.cache != CacheMode::None) cache.tokens.assign(seq.begin(), seq.begin() + Lc);
            seq.push_back(pk.token);
            record(StepKind::Commit, {{bs + B, pk.token, pk.confidence}}, 0, pk.token, bs);
        }

        for (size_t p = size_t(L); p < seq.size() && seq[p] != M; p++) {
            res.tokens.push_back(seq[p]);
            if (is_stop(stops, seq[p])) { res.stopped = true; break; }
        }
        st.generated_tokens = int(res.tokens.size());
        st.decode_seconds = now_seconds() - t_decode0;
        st.prefix_cache_len = Lc;
        if (opts.cache == CacheMode::None) cache.tokens.clear();
        ev.unmasked.clear();
        ev.cancelled = res.cancelled;
        ev.stopped = res.stopped;
        emit(DecodeEvent::Type::Finished, int(seq.size()) > L ? (int(seq.size()) - 1) / B * B : 0);
        return std::move(res);
    }
};

}  // namespace

GenerateResult decode_diffusion(Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                                  const GenerateOptions& opts, const EventCallback& on_event,
                                  const std::atomic<bool>* cancel) {
    DiffusionRun run(model, cache, prompt, opts, on_event, cancel);
    return run.run();
}

}  // namespace fdl
