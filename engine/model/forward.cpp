// Model::forward: one pass of the decoder over n tokens (embedding, per layer RMSNorm, q/k/v with
// rotary embeddings, attention over the cache, o, RMSNorm, SwiGLU MLP; final norm and lm_head).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/io/error.h"
#include "engine/kernels/kernels.h"
#include "engine/model/model.h"
#include "engine/parallel/thread_pool.h"

namespace fdl {

namespace {

// Loops this small are faster on one thread than with a fork/join of the team.
constexpr long kParallelWork = 1 << 15;
// The same for a pass's row-wise steps (Model::forward), in floats of the rows they read.
constexpr long kRowJobWork = 1 << 12;

// Rows [i0, i1) of y = RMSNorm(x) * w (Model::forward splits the rows across the threads).
void rmsnorm_rows(const float* x, const float* w, float* y, int i0, int i1, int dim, double eps) {
    for (int i = i0; i < i1; i++) {
        const float* xi = x + size_t(i) * dim;
        float* yi = y + size_t(i) * dim;
        // Sum of squares in double, in 8 independent partial sums: one vector of doubles instead of
        // a chain of dependent scalar adds (the norm was 3% of a demo pass, all of it serial).
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int j = 0;
        for (; j + 8 <= dim; j += 8)
            for (int k = 0; k < 8; k++) part[k] += double(xi[j + k]) * xi[j + k];
        double ss = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
        for (; j < dim; j++) ss += double(xi[j]) * xi[j];
        const float r = float(1.0 / std::sqrt(ss / dim + eps));
        for (int j = 0; j < dim; j++) yi[j] = xi[j] * r * w[j];
    }
}

}  // namespace

void Model::ensure_scratch(int n) {
    if (n <= scratch_n_) return;
    const ModelConfig& c = cfg_;
    const size_t N = size_t(n);
    x_.resize(N * c.hidden_size);
    h_.resize(N * c.hidden_size);
    qkv_.resize(N * qkv_row());
    att_.resize(N * c.num_heads * c.head_dim);
    gate_up_.resize(N * 2 * c.intermediate_size);
    act_.resize(N * c.intermediate_size);
    scratch_n_ = n;
}

// Grows the rotary cos/sin table to cover positions [0, end); every layer's q and k share it.
// Kept across passes: computing each pass's rows was 1% of a demo pass (sin and cos in double).
static void grow_rope_table(int end, const std::vector<double>& inv_freq, std::vector<float>& cs, std::vector<float>& sn) {
    const size_t half = inv_freq.size(), have = cs.size() / half;
    if (size_t(end) <= have) return;
    cs.resize(size_t(end) * half);
    sn.resize(size_t(end) * half);
    for (size_t i = have; i < size_t(end); i++)
        for (size_t j = 0; j < half; j++) {
            const double a = double(i) * inv_freq[j];
            cs[i * half + j] = float(std::cos(a));
            sn[i * half + j] = float(std::sin(a));
        }
}

// Rotary embedding, HF Qwen2 convention (rotate_half: pairs i and i + d/2). x: n rows `stride`
// floats apart, each starting with `heads` vectors of hd (q or k inside a row of the stacked
// q/k/v projection); cos_t/sin_t: the table's rows for these n positions. One thread: the
// caller splits the rows.
static void apply_rope(float* x, int n, size_t stride, int heads, int hd, const float* cos_t, const float* sin_t) {
    const int half = hd / 2;
    for (int i = 0; i < n; i++) {
        const float* cs = cos_t + size_t(i) * half;
        const float* sn = sin_t + size_t(i) * half;
        for (int h = 0; h < heads; h++) {
            float* v = x + size_t(i) * stride + size_t(h) * hd;
            // j innermost: contiguous, so it vectorizes (3% of an int8 demo pass when j was outer)
            for (int j = 0; j < half; j++) {
                const float x0 = v[j], x1 = v[j + half];
                v[j] = x0 * cs[j] - x1 * sn[j];
                v[j + half] = x1 * cs[j] + x0 * sn[j];
            }
        }
    }
}

// In passes of several tokens, the query rows that share a KV head go through attend_rows16
// sixteen at a time (each key read once for all of them): 2.4-2.9x faster than row by row on a
// 32-token demo pass at 1,900 cached positions. One-token passes (AR decoding) stay row by row,
// which measured faster there (a handful of rows would fill few of the 16 lanes).
void Model::attention(KVCache& cache, int layer, const Pass& p, int rb, int nr, int row0) {
    const ModelConfig& c = cfg_;
    const int hd = c.head_dim, heads = c.num_heads, group = c.num_heads / c.num_kv_heads, kvd = cache.kv_dim;
    const float scale = 1.0f / std::sqrt(float(hd));
    const int nthreads = pool_threads();
    if (rows_.size() < size_t(nthreads) * size_t(p.attend_len)) rows_.resize(size_t(nthreads) * size_t(p.attend_len));
    const float* K = cache.k_row(layer, 0);
    const float* V = cache.v_row(layer, 0);
    auto limit_of = [&](int i) {
        const int pos = p.pos0 + i;
        if (p.mask == AttnMask::Causal) return std::min(p.attend_len, pos + 1);
        if (p.mask == AttnMask::BlockCausal) return std::min(p.attend_len, (pos / p.block + 1) * p.block);
        return p.attend_len;
    };
    // Query rows [rb, rb + nr) of the pass. Row r of KV head g: token rb + r / group, query head
    // g * group + r % group.
    const int rows_per_kv = nr * group;
    if (nr >= 2) {
        const int tiles = (rows_per_kv + 15) / 16;
        // One chunk per (KV head, tile of 16 query rows).
        parallel_chunks(c.num_kv_heads * tiles, long(nr) * heads * p.attend_len * hd > kParallelWork, [&](int item, int worker) {
            const int g = item / tiles, t = item % tiles;
            const float* q[16];
            float* o[16];
            int lim[16];
            const int r0 = t * 16, rows = std::min(16, rows_per_kv - r0);
            for (int k = 0; k < rows; k++) {
                const int i = rb + (r0 + k) / group, h = g * group + (r0 + k) % group;
                q[k] = qkv_.data() + size_t(row0 + i) * qkv_row() + size_t(h) * hd;
                o[k] = att_.data() + (size_t(row0 + i) * heads + h) * hd;
                lim[k] = limit_of(i);
            }
            float* s = rows_.data() + size_t(worker) * p.attend_len;
            attend_rows16(q, o, lim, rows, K + size_t(g) * hd, V + size_t(g) * hd, size_t(kvd), hd, scale, s);
        });
        return;
    }
    if (nr == 0) return;
    parallel_chunks(heads, long(heads) * p.attend_len * hd > kParallelWork, [&](int h, int worker) {
        float* s = rows_.data() + size_t(worker) * p.attend_len;
        const size_t kvoff = size_t(h / group) * hd;
        attend_row(qkv_.data() + size_t(row0 + rb) * qkv_row() + size_t(h) * hd, K + kvoff, V + kvoff, size_t(kvd),
                   limit_of(rb), hd, scale, s, att_.data() + (size_t(row0 + rb) * heads + h) * hd);
    });
}

void Model::check_pass(const KVCache& cache, const Pass& p) const {
    const ModelConfig& c = cfg_;
    if (p.n <= 0) throw Error("forward pass with no tokens");
    if (p.pos0 + p.n > p.attend_len || p.attend_len > cache.capacity)
        throw Error("internal: pass rows [" + std::to_string(p.pos0) + ", " + std::to_string(p.pos0 + p.n) +
                    ") outside attend/cache range");
    if (p.mask == AttnMask::BlockCausal && p.block <= 0) throw Error("internal: block-causal pass without block size");
    if (p.logits_from < 0 || p.logits_from + p.logits_count > p.n) throw Error("internal: logits rows out of range");
    for (int i = 0; i < p.n; i++) {
        const int32_t t = p.tokens[i];
        if (t < 0 || t >= c.vocab_size)
            throw Error("token id " + std::to_string(t) + " is outside the model's vocabulary (0.." +
                        std::to_string(c.vocab_size - 1) + ")");
    }
}

void Model::forward(KVCache& cache, const Pass& p, float* logits) {
    const ModelConfig& c = cfg_;
    check_pass(cache, p);
    ensure_scratch(p.n);
    const int H = c.hidden_size, n = p.n, kvd = cache.kv_dim;
    for (int i = 0; i < n; i++) embed_.row(p.tokens[i], x_.data() + size_t(i) * H);
    grow_rope_table(p.pos0 + n, inv_freq_, rope_cos_, rope_sin_);
    const int hd = c.head_dim, half = hd / 2, inter = c.intermediate_size;
    const float *rcos = rope_cos_.data() + size_t(p.pos0) * half, *rsin = rope_sin_.data() + size_t(p.pos0) * half;
    const size_t row = qkv_row(), Q = size_t(c.num_heads) * hd;
    const double eps = c.rms_norm_eps;
    // The row-wise steps between two matrices (residual add, norm, rotary, SwiGLU, and turning
    // the next matrix's input into bf16 or int8) run as one job over the rows, split across the
    // threads: run serially on the calling thread they were about a quarter of a two-thread
    // 32-token int8 demo pass, with the other thread waiting.
    auto rows_job = [](int count, long work_per_row, auto&& body) {
        parallel_ranges(count, balanced_grain(count), long(count) * work_per_row > kRowJobWork,
                        [&](int i0, int i1, int) { body(i0, i1); });
    };
    // Rows [0, count) of x (residual stream rows; first x += h_ when `add`, h_ holding the last
    // matrix's output) through the norm w into h_, converted there for the matrix `next`.
    auto norm_for = [&](float* x, bool add, const std::vector<float>& w, const Linear& next, int count) {
        next.reserve_input(lin_in_, count);
        rows_job(count, H, [&](int i0, int i1) {
            if (add)
                for (size_t k = size_t(i0) * H; k < size_t(i1) * H; k++) x[k] += h_[k];
            rmsnorm_rows(x, w.data(), h_.data(), i0, i1, H, eps);
            next.prepare_rows(h_.data(), i0, i1, lin_in_);
        });
    };
    bool pending = false;  // h_ holds the last MLP output, not yet added to x_
    int rb = 0, nr = n;    // rows past the last layer's q/k/v (below)
    for (int l = 0; l < c.num_layers; l++) {
        const LayerWeights& L = layers_[size_t(l)];
        norm_for(x_.data(), pending, L.attn_norm, L.qkv, n);
        L.qkv.apply_prepared(h_.data(), lin_in_, n, qkv_.data());
        // q and k are rotated in place in the stacked rows; attention reads q there, and k and v
        // go from there to the cache.
        rows_job(n, long(row), [&](int i0, int i1) {
            float* r0 = qkv_.data() + size_t(i0) * row;
            apply_rope(r0, i1 - i0, row, c.num_heads, hd, rcos + size_t(i0) * half, rsin + size_t(i0) * half);
            apply_rope(r0 + Q, i1 - i0, row, c.num_kv_heads, hd, rcos + size_t(i0) * half, rsin + size_t(i0) * half);
            for (int i = i0; i < i1; i++) {
                const float* r = qkv_.data() + size_t(i) * row;
                std::memcpy(cache.k_row(l, p.pos0 + i), r + Q, size_t(kvd) * sizeof(float));
                std::memcpy(cache.v_row(l, p.pos0 + i), r + Q + kvd, size_t(kvd) * sizeof(float));
            }
        });
        // Every row's k and v are needed by later passes, but after the last layer's q/k/v only the
        // rows that produce logits matter (as llama.cpp does for its outputs): on a 32-token commit
        // pass of the demo that skips a sixth of the work.
        const bool last = l == c.num_layers - 1;
        rb = last ? p.logits_from : 0;
        nr = last ? p.logits_count : n;
        if (nr == 0) break;
        attention(cache, l, p, rb, nr);
        float* x = x_.data() + size_t(rb) * H;  // rows [rb, rb + nr) of the pass; h_ from row 0
        const float* att = att_.data() + size_t(rb) * Q;
        L.o.reserve_input(lin_in_, nr);
        rows_job(nr, long(Q), [&](int i0, int i1) { L.o.prepare_rows(att, i0, i1, lin_in_); });
        L.o.apply_prepared(att, lin_in_, nr, h_.data());
        norm_for(x, true, L.mlp_norm, L.gate_up, nr);
        L.gate_up.apply_prepared(h_.data(), lin_in_, nr, gate_up_.data());
        L.down.reserve_input(lin_in_, nr);
        rows_job(nr, inter, [&](int i0, int i1) {
            swiglu_rows(gate_up_.data() + size_t(i0) * 2 * inter, i1 - i0, inter, act_.data() + size_t(i0) * inter);
            L.down.prepare_rows(act_.data(), i0, i1, lin_in_);
        });
        L.down.apply_prepared(act_.data(), lin_in_, nr, h_.data());
        pending = true;
    }
    if (p.logits_count > 0) {  // then the last layer ran rows [logits_from, +logits_count): rb, nr
        norm_for(x_.data() + size_t(rb) * H, true, final_norm_, *lm_head_, nr);
        lm_head_->apply_prepared(h_.data(), lin_in_, nr, logits);
    }
}

void Model::forward_batch(const std::vector<SeqPass>& seqs) {
    if (seqs.empty()) return;
    if (seqs.size() == 1) return forward(*seqs[0].cache, seqs[0].pass, seqs[0].logits);
    const ModelConfig& c = cfg_;
    int n = 0, end = 0, gathered = 0;
    for (const SeqPass& s : seqs) {
        check_pass(*s.cache, s.pass);
        n += s.pass.n;
        end = std::max(end, s.pass.pos0 + s.pass.n);
        gathered += s.pass.logits_count;
    }
    ensure_scratch(n);
    row_pos_.resize(size_t(n));
    row_seq_.resize(size_t(n));
    std::vector<int> first(seqs.size());  // each sequence's first row in the scratch
    const int H = c.hidden_size;
    for (size_t k = 0, r = 0; k < seqs.size(); k++) {
        const Pass& p = seqs[k].pass;
        first[k] = int(r);
        for (int i = 0; i < p.n; i++, r++) {
            row_pos_[r] = p.pos0 + i;
            row_seq_[r] = int(k);
            embed_.row(p.tokens[i], x_.data() + r * H);
        }
    }
    grow_rope_table(end, inv_freq_, rope_cos_, rope_sin_);
    const int hd = c.head_dim, half = hd / 2, inter = c.intermediate_size;
    const size_t row = qkv_row(), Q = size_t(c.num_heads) * hd;
    const double eps = c.rms_norm_eps;
    auto rows_job = [](int count, long work_per_row, auto&& body) {
        parallel_ranges(count, balanced_grain(count), long(count) * work_per_row > kRowJobWork,
                        [&](int i0, int i1, int) { body(i0, i1); });
    };
    auto norm_for = [&](float* x, bool add, const std::vector<float>& w, const Linear& next, int count) {
        next.reserve_input(lin_in_, count);
        rows_job(count, H, [&](int i0, int i1) {
            if (add)
                for (size_t k = size_t(i0) * H; k < size_t(i1) * H; k++) x[k] += h_[k];
            rmsnorm_rows(x, w.data(), h_.data(), i0, i1, H, eps);
            next.prepare_rows(h_.data(), i0, i1, lin_in_);
        });
    };
    // The same steps as forward(), over all rows; only rotary, K/V and attention look at which
    // sequence a row belongs to. Every row goes through the last layer (forward() keeps only the
    // logits rows there; here those are scattered among the sequences).
    for (int l = 0; l < c.num_layers; l++) {
        const LayerWeights& L = layers_[size_t(l)];
        norm_for(x_.data(), l > 0, L.attn_norm, L.qkv, n);
        L.qkv.apply_prepared(h_.data(), lin_in_, n, qkv_.data());
        rows_job(n, long(row), [&](int i0, int i1) {
            for (int i = i0; i < i1; i++) {
                float* r = qkv_.data() + size_t(i) * row;
                const float* cs = rope_cos_.data() + size_t(row_pos_[size_t(i)]) * half;
                const float* sn = rope_sin_.data() + size_t(row_pos_[size_t(i)]) * half;
                apply_rope(r, 1, row, c.num_heads, hd, cs, sn);
                apply_rope(r + Q, 1, row, c.num_kv_heads, hd, cs, sn);
                KVCache& cache = *seqs[size_t(row_seq_[size_t(i)])].cache;
                std::memcpy(cache.k_row(l, row_pos_[size_t(i)]), r + Q, size_t(cache.kv_dim) * sizeof(float));
                std::memcpy(cache.v_row(l, row_pos_[size_t(i)]), r + Q + cache.kv_dim, size_t(cache.kv_dim) * sizeof(float));
            }
        });
        for (size_t k = 0; k < seqs.size(); k++) attention(*seqs[k].cache, l, seqs[k].pass, 0, seqs[k].pass.n, first[k]);
        L.o.reserve_input(lin_in_, n);
        rows_job(n, long(Q), [&](int i0, int i1) { L.o.prepare_rows(att_.data(), i0, i1, lin_in_); });
        L.o.apply_prepared(att_.data(), lin_in_, n, h_.data());
        norm_for(x_.data(), true, L.mlp_norm, L.gate_up, n);
        L.gate_up.apply_prepared(h_.data(), lin_in_, n, gate_up_.data());
        L.down.reserve_input(lin_in_, n);
        rows_job(n, inter, [&](int i0, int i1) {
            swiglu_rows(gate_up_.data() + size_t(i0) * 2 * inter, i1 - i0, inter, act_.data() + size_t(i0) * inter);
            L.down.prepare_rows(act_.data(), i0, i1, lin_in_);
        });
        L.down.apply_prepared(act_.data(), lin_in_, n, h_.data());
    }
    if (gathered == 0) return;
    // The logits rows, gathered to the front (a row moves only towards the front, so in order),
    // after the last MLP output is added.
    for (size_t k = 0; k < size_t(n) * H; k++) x_[k] += h_[k];
    int g = 0;
    for (size_t k = 0; k < seqs.size(); k++)
        for (int i = 0; i < seqs[k].pass.logits_count; i++, g++)
            std::memmove(x_.data() + size_t(g) * H, x_.data() + size_t(first[k] + seqs[k].pass.logits_from + i) * H,
                         size_t(H) * sizeof(float));
    norm_for(x_.data(), false, final_norm_, *lm_head_, gathered);
    const size_t V = size_t(c.vocab_size);
    batch_logits_.resize(size_t(gathered) * V);
    lm_head_->apply_prepared(h_.data(), lin_in_, gathered, batch_logits_.data());
    g = 0;
    for (const SeqPass& s : seqs) {
        std::memcpy(s.logits, batch_logits_.data() + size_t(g) * V, size_t(s.pass.logits_count) * V * sizeof(float));
        g += s.pass.logits_count;
    }
}

}  // namespace fdl
