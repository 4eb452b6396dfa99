#include "engine/model/weight_loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "engine/io/error.h"
#include "engine/io/memory.h"
#include "engine/model/architecture.h"
#include "engine/kernels/kernels.h"
#include "engine/model/load_progress.h"

namespace fdl {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// One part of a stacked matrix: a projection's tensors (bias empty: none) and its rows.
struct Part {
    std::string weight, bias;
    int out;
};

// Reads the checkpoint's tensors, counting the bytes read for the progress report.
struct WeightLoader {
    const SafeTensors& st;
    const std::function<void(uint64_t, uint64_t)>& progress;
    uint64_t done = 0, total = 0;
    std::vector<float> scratch;  // see stacked()

    WeightLoader(const SafeTensors& s, const std::function<void(uint64_t, uint64_t)>& p) : st(s), progress(p) {
        for (const std::string& n : st.names()) total += st.get(n).nbytes;
    }

    // The view of a float tensor of exactly `shape`, or an error that says what is wrong.
    const TensorView& tensor(const std::string& name, const std::vector<int64_t>& shape) {
        const TensorView& t = st.get(name);
        if (t.shape != shape)
            throw file_error(t.file, "tensor " + name + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
        if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
            throw file_error(t.file, "tensor " + name + " has dtype " + dtype_name(t.dtype) + ", expected BF16, F16 or F32");
        prefetch(t);
        return t;
    }
    // A tensor is read once: its pages leave this process's memory after use (they stay in the
    // page cache). Otherwise a checkpoint's mapped pages count in the process's resident memory
    // beside the weights made from them: 15 GB for the 7B model's file.
    void count(const TensorView& t) {
        done += t.nbytes;
        release(t);
        if (progress) progress(done, total);
    }
    static void release(const TensorView& t) {
        if (t.data && t.nbytes > 0) release(t.data, t.data + t.nbytes);
    }
    // The whole pages inside [from, to) (rows of one tensor, or of consecutive ones).
    static void release(const uint8_t* from, const uint8_t* to) {
        const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
        const uintptr_t a = (uintptr_t(from) + page - 1) & ~(page - 1), b = uintptr_t(to) & ~(page - 1);
        if (b > a) (void)madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);  // advice: errors do not matter
    }

    // A float tensor of exactly `shape`, as float32.
    void floats(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& out) {
        const TensorView& t = tensor(name, shape);
        out.resize(size_t(t.numel()));
        to_f32(t, out.data());
        count(t);
    }

    // Projections of the same input stacked row-wise into one Linear (see LayerWeights); where
    // only some parts have a bias, the others' is zero. BF16 weights kept as BF16 (the published
    // checkpoints, the default) go from the file straight into the panel layout, on the thread
    // pool: a float32 copy on the way would make the kernel hand out the pages of a copy of every
    // matrix, most of the time of loading a large model. INT8 and INT4 are quantised from the
    // file's rows the same way, 16 rows at a time. `scratch` keeps its pages from one matrix to
    // the next where a float32 copy is needed on the way (BF16 from F32/F16 files; parts of
    // different file types).
    void stacked(const std::vector<Part>& parts, int in, WeightType type, Linear& l, bool lookup_only = false) {
        l.in = in;
        l.out = 0;
        std::vector<const TensorView*> views;
        bool all_bf16 = true, bias = false, one_dtype = true;
        for (const Part& p : parts) {
            views.push_back(&tensor(p.weight, {p.out, in}));
            all_bf16 = all_bf16 && views.back()->dtype == DType::BF16;
            one_dtype = one_dtype && views.back()->dtype == views.front()->dtype && views.back()->dtype != DType::F64;
            l.out += p.out;
            bias = bias || !p.bias.empty();
        }
        l.b.clear();
        if (bias) {
            std::vector<float> part;
            for (const Part& p : parts) {
                if (p.bias.empty()) part.assign(size_t(p.out), 0.0f);
                else floats(p.bias, {p.out}, part);
                l.b.insert(l.b.end(), part.begin(), part.end());
            }
        }
        const bool quantized = type == WeightType::INT8 || type == WeightType::INT4;
        if ((type == WeightType::BF16 && all_bf16) || (quantized && one_dtype)) {
            std::vector<const uint8_t*> rows;
            rows.reserve(size_t(l.out));
            const size_t row_bytes = size_t(in) * dtype_size(views.front()->dtype);
            for (const TensorView* t : views)
                for (int64_t r = 0; r < t->shape[0]; r++) rows.push_back(t->data + size_t(r) * row_bytes);
            if (quantized) {
                // In slabs of about 32 MB of the file, each slab's pages let go as soon as it is
                // done: the 7B model's embedding and lm_head are 1.1 GB each in BF16.
                l.begin_quantized(type, !lookup_only);
                const int slab = std::max(kPanel, int((32u << 20) / row_bytes) / kPanel * kPanel);
                for (int r0 = 0; r0 < l.out; r0 += slab) {
                    const int r1 = std::min(l.out, r0 + slab);
                    l.quantize_rows(rows.data(), views.front()->dtype, r0, r1);
                    int v0 = 0;  // the slab's rows in each part's tensor
                    for (const TensorView* t : views) {
                        const int v1 = v0 + int(t->shape[0]), a = std::max(r0, v0), b = std::min(r1, v1);
                        if (a < b) release(t->data + size_t(a - v0) * row_bytes, t->data + size_t(b - v0) * row_bytes);
                        v0 = v1;
                    }
                }
                l.end_quantized();
            } else {
                l.set_bf16_rows(rows.data(), !lookup_only);
            }
        } else {
            std::vector<float> fresh;
            std::vector<float>& all = type == WeightType::F32 ? fresh : scratch;  // F32 keeps the buffer itself
            all.resize(size_t(l.out) * size_t(in));
            size_t off = 0;
            for (const TensorView* t : views) {
                to_f32(*t, all.data() + off);
                off += size_t(t->numel());
            }
            if (type == WeightType::F32) l.set_f32(std::move(fresh));
            else l.set(all, type);
        }
        for (const TensorView* t : views) count(*t);
    }
    void linear(const Part& p, int in, WeightType type, Linear& l, bool lookup_only = false) {
        stacked({p}, in, type, l, lookup_only);
    }
};

Part part(const ProjectionNames& names, int layer, int out) {
    return {layer_tensor(names.weight, layer), names.bias.empty() ? "" : layer_tensor(names.bias, layer), out};
}

// What an int4 model keeps in other types. The output matrix (lm_head, or the tied embedding
// that serves as one) is int8: every logit goes through it (on the demo models' validation draw
// an int4 one cost the dLLM 2 reversal items of 56 and 3% of its tokens per forward, where int8
// did as well as bf16; docs/demo-models.md). An untied embedding, only looked up by rows, is
// int8 as well (the 7B model's BF16 rows alone would take 1.1 GB). Norms and biases stay float32.
WeightType output_type(WeightType wt) { return wt == WeightType::INT4 ? WeightType::INT8 : wt; }

// Untied embedding rows: BF16 rows as they are in the file (exact; half the memory of float32:
// 1.1 GB less for the 7B model), other files' rows as float32; int8 in an int4 model.
WeightType lookup_type(WeightType wt, bool bf16_file) {
    if (wt == WeightType::INT4) return WeightType::INT8;
    return bf16_file && wt != WeightType::F32 ? WeightType::BF16 : WeightType::F32;
}

}  // namespace

uint64_t planned_weight_bytes(const ModelConfig& c, WeightType wt, bool bf16_file, bool has_lm_head) {
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim, I = c.intermediate_size;
    const bool tied = c.tie_word_embeddings && !has_lm_head;
    uint64_t n = 4 * uint64_t(H);  // the final norm
    for (int l = 0; l < c.num_layers; l++)
        n += weight_matrix_bytes(wt, H, Q + 2 * KV) + weight_matrix_bytes(wt, Q, H) + weight_matrix_bytes(wt, H, 2 * I) +
             weight_matrix_bytes(wt, I, H) + 4 * uint64_t(Q + 2 * KV + 2 * H);  // biases, norms
    if (tied) return n + weight_matrix_bytes(output_type(wt), H, c.vocab_size);
    return n + weight_matrix_bytes(lookup_type(wt, bf16_file), H, c.vocab_size) +
           weight_matrix_bytes(output_type(wt), H, c.vocab_size);
}

ModelWeights load_weights(const SafeTensors& st, const ModelConfig& c, WeightType wt,
                          const std::function<void(uint64_t, uint64_t)>& progress) {
    const TensorNames& names = architecture_of(c).tensors;
    const bool has_lm_head = st.find(names.lm_head) != nullptr;
    const bool tied = c.tie_word_embeddings && !has_lm_head;
    const TensorView* embed_file = st.find(names.embed);
    const bool bf16_file = embed_file && embed_file->dtype == DType::BF16;
    const uint64_t planned = planned_weight_bytes(c, wt, bf16_file, has_lm_head);
    {  // Refused up front: past the free memory the OOM killer ends the process without a word.
        // Every matrix in the type it is kept in, and the float32 copy a matrix of the
        // embedding's size goes through when it is converted (BF16 or F32 from another file
        // type; INT8 and INT4 are quantised from the file's rows without one).
        const uint64_t embed = uint64_t(c.vocab_size) * uint64_t(c.hidden_size);
        const bool converted = wt == WeightType::BF16 && !bf16_file;
        require_memory(planned + (converted ? embed * 4 : 0),
                       c.dir + ": loading the weights (" + std::to_string(c.parameter_count()) + " parameters as " +
                           weight_type_name(wt) + ")");
    }
    if (progress)
        if (const LoadProgressLine* line = progress.target<LoadProgressLine>()) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.1f GB as %s", double(planned) / 1e9, weight_type_name(wt));
            line->set_weights(buf);
        }
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim, I = c.intermediate_size;
    WeightLoader ld(st, progress);
    ModelWeights w;
    // The embedding is kept in the output matrix's type when it doubles as the tied lm_head, else
    // in lookup_type.
    const Part embed{names.embed, "", c.vocab_size};
    if (tied) ld.linear(embed, H, output_type(wt), w.embed);
    else ld.linear(embed, H, lookup_type(wt, bf16_file), w.embed, true);
    w.layers.resize(size_t(c.num_layers));
    for (int l = 0; l < c.num_layers; l++) {
        LayerWeights& L = w.layers[size_t(l)];
        ld.floats(layer_tensor(names.attn_norm, l), {H}, L.attn_norm);
        ld.floats(layer_tensor(names.mlp_norm, l), {H}, L.mlp_norm);
        ld.stacked({part(names.q, l, Q), part(names.k, l, KV), part(names.v, l, KV)}, H, wt, L.qkv);
        ld.linear(part(names.o, l, H), Q, wt, L.o);
        ld.stacked({part(names.gate, l, I), part(names.up, l, I)}, H, wt, L.gate_up);
        ld.linear(part(names.down, l, H), I, wt, L.down);
    }
    ld.floats(names.final_norm, {H}, w.final_norm);
    if (has_lm_head) {
        w.lm_head.emplace();
        ld.linear({names.lm_head, "", c.vocab_size}, H, output_type(wt), *w.lm_head);
    } else if (!c.tie_word_embeddings) {
        throw file_error(c.dir, "missing tensor " + names.lm_head + " (and tie_word_embeddings is false)");
    }
    return w;
}

}  // namespace fdl
