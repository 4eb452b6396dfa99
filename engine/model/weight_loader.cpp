#include "engine/model/weight_loader.h"

#include "engine/io/error.h"
#include "engine/io/memory.h"
#include "engine/model/architecture.h"

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
    void count(const TensorView& t) {
        done += t.nbytes;
        if (progress) progress(done, total);
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
    // matrix, most of the time of loading a large model. `scratch` keeps its pages from one
    // matrix to the next where a float32 copy is needed on the way (BF16 from F32/F16 files, INT8).
    void stacked(const std::vector<Part>& parts, int in, WeightType type, Linear& l, bool lookup_only = false) {
        l.in = in;
        l.out = 0;
        std::vector<const TensorView*> views;
        bool all_bf16 = true, bias = false;
        for (const Part& p : parts) {
            views.push_back(&tensor(p.weight, {p.out, in}));
            all_bf16 = all_bf16 && views.back()->dtype == DType::BF16;
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
        if (type == WeightType::BF16 && all_bf16) {
            std::vector<const uint8_t*> rows;
            rows.reserve(size_t(l.out));
            for (const TensorView* t : views)
                for (int64_t r = 0; r < t->shape[0]; r++) rows.push_back(t->data + size_t(r) * size_t(in) * 2);
            l.set_bf16_rows(rows.data(), !lookup_only);
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

}  // namespace

ModelWeights load_weights(const SafeTensors& st, const ModelConfig& c, WeightType wt,
                          const std::function<void(uint64_t, uint64_t)>& progress) {
    const TensorNames& names = architecture_of(c).tensors;
    const bool has_lm_head = st.find(names.lm_head) != nullptr;
    const bool tied = c.tie_word_embeddings && !has_lm_head;
    const TensorView* embed_file = st.find(names.embed);
    const bool bf16_file = embed_file && embed_file->dtype == DType::BF16;
    {  // Refused up front: past the free memory the OOM killer ends the process without a word.
        // A lower bound: every weight in the chosen type, the untied embedding's rows in the type
        // they are kept in (see below), and the float32 copy a matrix of the embedding's size goes
        // through when it is converted (not when BF16 stays BF16, or for float32).
        const uint64_t per = wt == WeightType::F32 ? 4 : wt == WeightType::BF16 ? 2 : 1;
        const uint64_t embed = uint64_t(c.vocab_size) * uint64_t(c.hidden_size);
        const uint64_t rows = bf16_file && wt != WeightType::F32 ? 2 : 4;
        const bool converted = wt == WeightType::INT8 || (wt == WeightType::BF16 && !bf16_file);
        require_memory(uint64_t(c.parameter_count()) * per + (tied ? 0 : embed * (rows - per)) + (converted ? embed * 4 : 0),
                       c.dir + ": loading the weights (" + std::to_string(c.parameter_count()) + " parameters as " +
                           weight_type_name(wt) + ")");
    }
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim, I = c.intermediate_size;
    WeightLoader ld(st, progress);
    ModelWeights w;
    // Kept in the weight type when it doubles as the tied lm_head. Else only rows are looked up:
    // BF16 rows as they are in the file (exact; half the memory of float32: 1.1 GB less for the
    // 7B model), other files' rows as float32.
    const Part embed{names.embed, "", c.vocab_size};
    if (tied) ld.linear(embed, H, wt, w.embed);
    else ld.linear(embed, H, bf16_file && wt != WeightType::F32 ? WeightType::BF16 : WeightType::F32, w.embed, true);
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
        ld.linear({names.lm_head, "", c.vocab_size}, H, wt, *w.lm_head);
    } else if (!c.tie_word_embeddings) {
        throw file_error(c.dir, "missing tensor " + names.lm_head + " (and tie_word_embeddings is false)");
    }
    return w;
}

}  // namespace fdl
