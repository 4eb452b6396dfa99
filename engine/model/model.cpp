#include "engine/model/model.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <sys/stat.h>

#include "engine/io/error.h"
#include "engine/io/memory.h"
#include "engine/kernels/kernels.h"
#include "engine/io/safetensors.h"
#include "engine/parallel/thread_pool.h"

namespace fdl {

const char* weight_type_name(WeightType t) {
    return t == WeightType::F32 ? "f32" : t == WeightType::BF16 ? "bf16" : "int8";
}

bool parse_weight_type(const std::string& s, std::optional<WeightType>& out) {
    if (s == "auto") out.reset();
    else if (s == "f32") out = WeightType::F32;
    else if (s == "bf16") out = WeightType::BF16;
    else if (s == "int8") out = WeightType::INT8;
    else return false;
    return true;
}

void Linear::set_f32(std::vector<float>&& m) {
    type = WeightType::F32;
    w16.clear();
    w8.clear();
    w = std::move(m);
    packed = packs_f32(in, out);
    if (packed) pack_f32(w.data(), in, out);
}

void Linear::set_bf16_rows(const uint8_t* const* rows, bool pack) {
    type = WeightType::BF16;
    w.clear();
    w8.clear();
    w16.resize(size_t(out) * size_t(in));
    packed = pack && packs_bf16(in, out);
    pack_bf16_rows(rows, in, out, packed, w16.data());
}

// body(r0, r1) over the rows of an [out, in] matrix, on the thread pool when it is large enough to
// be worth it (loading; every row is converted on its own, so the split never changes a bit).
template <class Body>
static void by_rows(int out, int in, Body&& body) {
    const int grain = std::max(1, (1 << 16) / std::max(1, in));
    parallel_ranges(out, grain, long(out) * in >= (1L << 20), [&](int r0, int r1, int) { body(r0, r1); });
}

void Linear::set(const std::vector<float>& m, WeightType t) {
    type = t;
    packed = false;
    w.clear();
    w16.clear();
    w8.clear();
    if (t == WeightType::F32) {
        w = m;
        packed = packs_f32(in, out);
        if (packed) pack_f32(w.data(), in, out);
    } else if (t == WeightType::BF16) {
        w16.resize(m.size());
        by_rows(out, in, [&](int r0, int r1) { to_bf16(m.data() + size_t(r0) * in, size_t(r1 - r0) * in, w16.data() + size_t(r0) * in); });
        packed = packs_bf16(in, out);
        if (packed) pack_bf16(w16.data(), in, out);
    } else {
        w8.resize(m.size());
        scale.resize(size_t(out));
        wsum.resize(size_t(out));
        packed = packs_int8(in, out);
        const int covered = packed ? in : in / 64 * 64;  // what the VNNI kernel covers
        by_rows(out, in, [&](int r0, int r1) {
            quantize_rows_int8(m.data() + size_t(r0) * in, r1 - r0, in, w8.data() + size_t(r0) * in, scale.data() + r0);
            for (int o = r0; o < r1; o++) {
                int32_t s = 0;
                for (int k = 0; k < covered; k++) s += w8[size_t(o) * in + k];
                wsum[size_t(o)] = s;
            }
        });
        if (packed) pack_int8(w8.data(), in, out);
    }
}

void Linear::reserve_input(LinearInput& li, int n) const {
    const size_t len = size_t(n) * in;
    if (type == WeightType::BF16 && li.b16.size() < len) li.b16.resize(len);
    if (type == WeightType::INT8) {
        if (li.q8.size() < len) li.q8.resize(len);
        if (int8_reads_unsigned() && li.u8.size() < len) li.u8.resize(len);
        if (li.scales.size() < size_t(n)) li.scales.resize(size_t(n));
    }
}

void Linear::prepare_rows(const float* x, int r0, int r1, LinearInput& li) const {
    const size_t off = size_t(r0) * in, len = size_t(r1 - r0) * in;
    if (type == WeightType::BF16) to_bf16(x + off, len, li.b16.data() + off);
    if (type == WeightType::INT8) {
        quantize_rows_int8(x + off, r1 - r0, in, li.q8.data() + off, li.scales.data() + r0);
        if (int8_reads_unsigned()) int8_to_unsigned(li.q8.data() + off, len, li.u8.data() + off);
    }
}

void Linear::apply_prepared(const float* x, const LinearInput& li, int n, float* y) const {
    if (type == WeightType::F32) {
        if (packed) matmul_f32_packed(x, n, w.data(), in, out, y);
        else if (matmul_f32_small(x, n, w.data(), in, out, y)) {
        } else if (n == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.f, w.data(), in, x, 1, 0.f, y, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, in, w.data(), in, 0.f, y, out);
    } else if (type == WeightType::BF16) {
        matmul_bf16(li.b16.data(), n, w16.data(), in, out, y, packed);
    } else {
        matmul_int8(li.q8.data(), li.scales.data(), n, w8.data(), scale.data(), wsum.data(), in, out, y, packed,
                    int8_reads_unsigned() ? li.u8.data() : nullptr);
    }
    if (!b.empty()) {
        for (int i = 0; i < n; i++) {
            float* row = y + size_t(i) * out;
            for (int j = 0; j < out; j++) row[j] += b[j];
        }
    }
}

void Linear::apply(const float* x, int n, float* y) const {
    thread_local LinearInput li;  // grows to the largest pass, then never again
    reserve_input(li, n);
    prepare_rows(x, 0, n, li);
    apply_prepared(x, li, n, y);
}

// Row r of a weight matrix, through `conv`. Packed rows are read a group of G inputs at a time
// (G consecutive values, then the next group 16 * G further), not element by element through
// panel_index: embedding lookups of a 32-token pass were 2% of an int8 demo pass that way.
template <int G, typename T, typename Conv>
static void gather_row(const T* w, int in, int r, bool packed, float* dst, Conv conv) {
    if (!packed) {
        for (int k = 0; k < in; k++) dst[k] = conv(w[size_t(r) * in + k]);
        return;
    }
    const T* p = w + panel_index(in, r, 0, G);
    for (int k = 0; k < in; k += G, p += size_t(kPanel) * G)
        for (int g = 0; g < G; g++) dst[k + g] = conv(p[g]);
}

void Linear::row(int r, float* dst) const {
    if (type == WeightType::F32) gather_row<1>(w.data(), in, r, packed, dst, [](float v) { return v; });
    else if (type == WeightType::BF16) gather_row<2>(w16.data(), in, r, packed, dst, bf16_to_f32);
    else {
        const float s = scale[size_t(r)];
        gather_row<4>(w8.data(), in, r, packed, dst, [s](int8_t v) { return v * s; });
    }
}

size_t Linear::bytes() const {
    return w.size() * 4 + w16.size() * 2 + w8.size() + scale.size() * 4 + wsum.size() * 4 + b.size() * 4;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// Reads the checkpoint's tensors into the model, counting the bytes read for the progress report.
struct WeightLoader {
    const SafeTensors& st;
    const LoadOptions& opts;
    uint64_t done = 0, total = 0;
    std::vector<float> scratch;  // see stacked()

    WeightLoader(const SafeTensors& s, const LoadOptions& o) : st(s), opts(o) {
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
        if (opts.progress) opts.progress(done, total);
    }

    // A float tensor of exactly `shape`, as float32.
    void floats(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& out) {
        const TensorView& t = tensor(name, shape);
        out.resize(size_t(t.numel()));
        to_f32(t, out.data());
        count(t);
    }

    // Projections of the same input stacked row-wise into one Linear (see LayerWeights). BF16
    // weights kept as BF16 (the published checkpoints, the default) go from the file straight
    // into the panel layout, on the thread pool: with a float32 copy on the way, loading a 1.5B
    // model took 14-18 s here, most of it the kernel handing out the pages of those copies.
    // `scratch` keeps its pages from one matrix to the next where a float32 copy is needed on
    // the way (BF16 from F32/F16 files, INT8).
    void stacked(const std::vector<std::string>& prefixes, const std::vector<int>& outs, int in, bool bias, WeightType type,
                 Linear& l, bool lookup_only = false) {
        l.in = in;
        l.out = 0;
        std::vector<const TensorView*> parts;
        bool all_bf16 = true;
        for (size_t i = 0; i < prefixes.size(); i++) {
            parts.push_back(&tensor(prefixes[i] + ".weight", {outs[i], in}));
            all_bf16 = all_bf16 && parts.back()->dtype == DType::BF16;
            l.out += outs[i];
        }
        l.b.clear();
        if (bias) {
            std::vector<float> part;
            for (size_t i = 0; i < prefixes.size(); i++) {
                floats(prefixes[i] + ".bias", {outs[i]}, part);
                l.b.insert(l.b.end(), part.begin(), part.end());
            }
        }
        if (type == WeightType::BF16 && all_bf16) {
            std::vector<const uint8_t*> rows;
            rows.reserve(size_t(l.out));
            for (const TensorView* t : parts)
                for (int64_t r = 0; r < t->shape[0]; r++) rows.push_back(t->data + size_t(r) * size_t(in) * 2);
            l.set_bf16_rows(rows.data(), !lookup_only);
        } else {
            std::vector<float> fresh;
            std::vector<float>& all = type == WeightType::F32 ? fresh : scratch;  // F32 keeps the buffer itself
            all.resize(size_t(l.out) * size_t(in));
            size_t off = 0;
            for (const TensorView* t : parts) {
                to_f32(*t, all.data() + off);
                off += size_t(t->numel());
            }
            if (type == WeightType::F32) l.set_f32(std::move(fresh));
            else l.set(all, type);
        }
        for (const TensorView* t : parts) count(*t);
    }
    void linear(const std::string& prefix, int in, int out, bool bias, WeightType type, Linear& l, bool lookup_only = false) {
        stacked({prefix}, {out}, in, bias, type, l, lookup_only);
    }
};

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

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& opts) {
    struct stat sb {};
    if (::stat(dir.c_str(), &sb) != 0) throw file_error(dir, "no such model folder");
    if (!S_ISDIR(sb.st_mode)) throw file_error(dir, "not a folder (give the model folder, not a file)");
    auto m = std::unique_ptr<Model>(new Model());
    m->cfg_ = ModelConfig::from_dir(dir);
    const ModelConfig& c = m->cfg_;
    if (opts.load_tokenizer) {
        m->tok_ = Tokenizer::from_model_dir(dir);
        m->has_tok_ = true;
        m->mask_id_ = m->tok_.token_id("|<MASK>|");
        if (m->mask_id_ >= c.vocab_size)
            throw file_error(dir, "mask token id " + std::to_string(m->mask_id_) + " is outside the model's vocabulary (" +
                                      std::to_string(c.vocab_size) + ")");
        if (c.eos_token_ids.empty()) {
            int32_t e = m->tok_.token_id("<|im_end|>");
            if (e >= 0) m->cfg_.eos_token_ids.push_back(e);
        }
    }
    if (c.is_diffusion && opts.load_tokenizer && m->mask_id_ < 0)
        throw file_error(dir, "block-diffusion model but the tokenizer has no |<MASK>| token "
                              "(checked tokenizer.json, added_tokens.json, tokenizer_config.json)");

    SafeTensors st = SafeTensors::open_model_dir(dir);
    m->wtype_ = opts.weight_type ? *opts.weight_type : c.parameter_count() > 1000000 ? WeightType::BF16 : WeightType::F32;
    const WeightType wt = m->wtype_;
    const bool tied = c.tie_word_embeddings && !st.find("lm_head.weight");
    const TensorView* embed_file = st.find("model.embed_tokens.weight");
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
                       dir + ": loading the weights (" + std::to_string(c.parameter_count()) + " parameters as " +
                           weight_type_name(wt) + ")");
    }
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim;
    WeightLoader ld(st, opts);
    // Kept in the weight type when it doubles as the tied lm_head. Else only rows are looked up:
    // BF16 rows as they are in the file (exact; half the memory of float32: 1.1 GB less for the
    // 7B model), other files' rows as float32.
    if (tied) {
        ld.linear("model.embed_tokens", H, c.vocab_size, false, wt, m->embed_);
    } else {
        ld.linear("model.embed_tokens", H, c.vocab_size, false, bf16_file && wt != WeightType::F32 ? WeightType::BF16 : WeightType::F32,
                  m->embed_, true);
    }
    m->layers_.resize(size_t(c.num_layers));
    for (int l = 0; l < c.num_layers; l++) {
        const std::string p = "model.layers." + std::to_string(l);
        LayerWeights& L = m->layers_[size_t(l)];
        ld.floats(p + ".input_layernorm.weight", {H}, L.attn_norm);
        ld.floats(p + ".post_attention_layernorm.weight", {H}, L.mlp_norm);
        const std::string a = p + ".self_attn.", f = p + ".mlp.";
        ld.stacked({a + "q_proj", a + "k_proj", a + "v_proj"}, {Q, KV, KV}, H, true, wt, L.qkv);
        ld.linear(a + "o_proj", Q, H, false, wt, L.o);
        ld.stacked({f + "gate_proj", f + "up_proj"}, {c.intermediate_size, c.intermediate_size}, H, false, wt, L.gate_up);
        ld.linear(f + "down_proj", c.intermediate_size, H, false, wt, L.down);
    }
    ld.floats("model.norm.weight", {H}, m->final_norm_);
    if (st.find("lm_head.weight")) {
        ld.linear("lm_head", H, c.vocab_size, false, wt, m->lm_head_own_);
        m->lm_head_ = &m->lm_head_own_;
    } else if (c.tie_word_embeddings) {
        m->lm_head_ = &m->embed_;
    } else {
        throw file_error(dir, "missing tensor lm_head.weight (and tie_word_embeddings is false)");
    }
    m->inv_freq_.resize(size_t(c.head_dim / 2));
    for (int i = 0; i < c.head_dim / 2; i++)
        m->inv_freq_[size_t(i)] = 1.0 / std::pow(c.rope_theta, double(2 * i) / c.head_dim);
    return m;
}

std::unique_ptr<Model> Model::random(const ModelConfig& shape, WeightType type, uint64_t seed) {
    auto m = std::unique_ptr<Model>(new Model());
    m->cfg_ = shape;
    m->wtype_ = type;
    const ModelConfig& c = m->cfg_;
    uint64_t state = seed;
    auto fill = [&](size_t n, float scale) {
        std::vector<float> v(n);
        for (auto& x : v) {  // splitmix64, uniform in [-scale, scale)
            uint64_t z = (state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            x = scale * (float((z ^ (z >> 31)) >> 40) * (2.0f / 16777216.0f) - 1.0f);
        }
        return v;
    };
    auto linear = [&](Linear& l, int in, int out, bool bias) {
        l.in = in;
        l.out = out;
        l.set(fill(size_t(in) * out, 0.035f), type);
        if (bias) l.b = fill(size_t(out), 0.003f);
    };
    const int H = c.hidden_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim;
    linear(m->embed_, H, c.vocab_size, false);
    if (!c.tie_word_embeddings) {
        m->embed_.set(fill(size_t(H) * c.vocab_size, 0.035f), WeightType::F32);
        linear(m->lm_head_own_, H, c.vocab_size, false);
        m->lm_head_ = &m->lm_head_own_;
    } else {
        m->lm_head_ = &m->embed_;
    }
    m->layers_.resize(size_t(c.num_layers));
    for (auto& L : m->layers_) {
        L.attn_norm.assign(size_t(H), 1.0f);
        L.mlp_norm.assign(size_t(H), 1.0f);
        linear(L.qkv, H, Q + 2 * KV, true);
        linear(L.o, Q, H, false);
        linear(L.gate_up, H, 2 * c.intermediate_size, false);
        linear(L.down, c.intermediate_size, H, false);
    }
    m->final_norm_.assign(size_t(H), 1.0f);
    m->inv_freq_.resize(size_t(c.head_dim / 2));
    for (int i = 0; i < c.head_dim / 2; i++) m->inv_freq_[size_t(i)] = 1.0 / std::pow(c.rope_theta, double(2 * i) / c.head_dim);
    return m;
}

KVCache Model::make_cache() const {
    KVCache c;
    c.init(cfg_.num_layers, cfg_.num_kv_heads * cfg_.head_dim);
    return c;
}

size_t Model::weight_bytes() const {
    size_t n = embed_.bytes() + final_norm_.size() * 4 + lm_head_own_.bytes();
    for (auto& L : layers_)
        n += (L.attn_norm.size() + L.mlp_norm.size()) * 4 + L.qkv.bytes() + L.o.bytes() + L.gate_up.bytes() +
             L.down.bytes();
    return n;
}

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
void Model::attention(KVCache& cache, int layer, const Pass& p, int rb, int nr) {
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
                q[k] = qkv_.data() + size_t(i) * qkv_row() + size_t(h) * hd;
                o[k] = att_.data() + (size_t(i) * heads + h) * hd;
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
        attend_row(qkv_.data() + size_t(rb) * qkv_row() + size_t(h) * hd, K + kvoff, V + kvoff, size_t(kvd),
                   limit_of(rb), hd, scale, s, att_.data() + (size_t(rb) * heads + h) * hd);
    });
}

void Model::forward(KVCache& cache, const Pass& p, float* logits) {
    const ModelConfig& c = cfg_;
    if (p.n <= 0) throw Error("forward pass with no tokens");
    if (p.pos0 + p.n > p.attend_len || p.attend_len > cache.capacity)
        throw Error("internal: pass rows [" + std::to_string(p.pos0) + ", " + std::to_string(p.pos0 + p.n) +
                    ") outside attend/cache range");
    if (p.mask == AttnMask::BlockCausal && p.block <= 0) throw Error("internal: block-causal pass without block size");
    if (p.logits_from < 0 || p.logits_from + p.logits_count > p.n) throw Error("internal: logits rows out of range");
    ensure_scratch(p.n);
    const int H = c.hidden_size, n = p.n, kvd = cache.kv_dim;
    for (int i = 0; i < n; i++) {
        const int32_t t = p.tokens[i];
        if (t < 0 || t >= c.vocab_size)
            throw Error("token id " + std::to_string(t) + " is outside the model's vocabulary (0.." +
                        std::to_string(c.vocab_size - 1) + ")");
        embed_.row(t, x_.data() + size_t(i) * H);
    }
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

}  // namespace fdl
