// fastdllm bench: the cost of one forward pass with 1, 8, 32 and 512 tokens (the AR step, the
// DualCache sub-block pass, the full-block pass, a prompt prefill), for a model folder or an
// in-memory random model in a published shape, read against the machine's measured bandwidth
// and GEMM peak.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "engine/model/load_progress.h"
#include "engine/decode/speedup_bound.h"
#include "engine/io/clock.h"
#include "engine/kernels/kernels.h"
#include "engine/testing/machine_probe.h"
#include "engine/testing/random_model.h"
#include "engine/testing/random_weights.h"
#include "engine/parallel/threads.h"

namespace fdl::cli {

int cmd_bench(int argc, char** argv, int first) {
    std::optional<WeightType> dtype;
    std::string model_dir, shape, csv_path, tokens_arg = "1,8,16,32,512";
    int reps = 5, context = 64, threads = 0;
    bool machine = false, as_json = false;
    ArgParser p("bench", "(-m DIR | --shape NAME) [--dtype T] [--tokens 1,8,16,32,512] [--machine]");
    p.add({"-m", "--model", "DIR", "model folder (or ORG/NAME in the Hugging Face cache) to time", [&](const std::string& v) { model_dir = v; }});
    p.add({"", "--shape", "NAME", "random weights in a published shape: qwen2.5-0.5b | qwen2.5-1.5b | qwen2.5-7b",
           [&](const std::string& v) { shape = v; }});
    p.add({"", "--dtype", "T", "weights in memory: auto | f32 | bf16 | int8 | int4", [&](const std::string& v) {
               if (!parse_weight_type(v, dtype))
                   throw UsageError{std::string("--dtype: expected ") + weight_type_choices() + ", got '" + v + "'"};
           }});
    p.add({"", "--tokens", "LIST", "tokens per pass to time (default 1,8,16,32,512: AR, sub-block, dual-overlap, block and prompt passes)", [&](const std::string& v) { tokens_arg = v; }});
    p.add({"", "--reps", "N", "timed passes per size; the median is reported (default 5)",
           [&](const std::string& v) { reps = parse_int("--reps", v, 1, 1000); }});
    p.add({"", "--context", "N", "cached positions each pass attends to (default 64)",
           [&](const std::string& v) { context = parse_int("--context", v, 0, 1 << 20); }});
    p.add({"-t", "--threads", "N", "CPU threads (default: physical cores)",
           [&](const std::string& v) { threads = parse_int("--threads", v, 1, 1024); }});
    p.add({"", "--machine", "", "also measure memory bandwidth and the SGEMM peak", [&](const std::string&) { machine = true; }});
    p.add({"", "--csv", "FILE", "append one CSV row per pass size to FILE", [&](const std::string& v) { csv_path = v; }});
    p.add({"", "--json", "", "print JSON instead of a table", [&](const std::string&) { as_json = true; }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help();
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    if (model_dir.empty() == shape.empty()) throw UsageError{"give exactly one of -m DIR or --shape NAME"};
    if (!model_dir.empty()) model_dir = resolve_model_dir(model_dir);
    const std::vector<int32_t> sizes = parse_id_list("--tokens", tokens_arg);
    threads = set_threads(threads);

    nlohmann::json out;
    out["cpu"] = cpu_model_name();
    out["threads"] = threads;
    out["kernels"] = kernel_path_name();
    double bw = 0, peak = 0;
    if (machine) {
        bw = measure_read_bandwidth_gbs(threads);
        peak = measure_sgemm_gflops();
        out["read_bandwidth_gbs"] = bw;
        out["sgemm_gflops"] = peak;
    }

    std::unique_ptr<Model> model;
    std::string name;
    if (!shape.empty()) {
        ModelConfig c;
        if (!published_shape(shape, true, c)) throw UsageError{"--shape: unknown shape '" + shape + "'"};
        const WeightType wt = dtype.value_or(WeightType::BF16);
        std::fprintf(stderr, "building a random %s model in memory (%s)...\n", shape.c_str(), weight_type_name(wt));
        model = random_model(c, wt);
        name = shape;
    } else {
        LoadOptions lo;
        lo.weight_type = dtype;
        lo.load_tokenizer = false;
        lo.progress = stderr_load_progress(model_dir);
        model = Model::load(model_dir, lo);
        name = model->config().name;
    }
    const ModelConfig& c = model->config();
    const double bytes = double(model->weight_bytes());
    // Multiply-adds per token of the matrices every token passes through (lm_head counted once per pass).
    const double layer_params = double(c.parameter_count()) - double(c.vocab_size) * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
    const double head_params = double(c.vocab_size) * c.hidden_size;
    const double qkv_params = double(c.hidden_size) * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim;
    out["model"] = name;
    out["dtype"] = weight_type_name(model->weight_type());
    out["weight_bytes"] = bytes;
    out["passes"] = nlohmann::json::array();

    KVCache cache = model->make_cache();
    const int maxn = *std::max_element(sizes.begin(), sizes.end());
    cache.reserve(context + maxn + 1);
    std::vector<int32_t> toks(size_t(context + maxn), 1);
    std::vector<float> logits(size_t(c.vocab_size) * 8);
    if (context > 0) model->forward(cache, {toks.data(), context, 0, context, AttnMask::Causal, 0, 0, 0}, nullptr);
    if (!as_json)
        std::printf("| model | dtype | tokens/pass | ms/pass | tokens/s | weight GB/s | GFLOP/s |%s\n|---|---|---:|---:|---:|---:|---:|%s\n",
                    machine ? " % of bandwidth | % of SGEMM peak |" : "", machine ? "---:|---:|" : "");
    std::ofstream csv;
    if (!csv_path.empty()) csv.open(csv_path, std::ios::app);
    std::map<int, double> median_of;  // tokens -> seconds
    for (int n : sizes) {
        // Logits for up to 8 rows, as the decoders ask (a sub-block's worth).
        const int nl = std::min(n, 8);
        Pass pass{toks.data() + context, n, context, context + n, AttnMask::BlockCausal, std::max(n, 1), n - nl, nl};
        // This VM's read bandwidth swings from one minute to the next: each size's share of it is
        // taken against probes right before and right after its own passes.
        const double bw_before = machine ? measure_read_bandwidth_gbs(threads) : 0;
        model->forward(cache, pass, logits.data());  // warm-up
        std::vector<double> t;
        for (int r = 0; r < reps; r++) {
            const double t0 = now_seconds();
            model->forward(cache, pass, logits.data());
            t.push_back(now_seconds() - t0);
        }
        const double read_gbs = machine ? (bw_before + measure_read_bandwidth_gbs(threads)) / 2 : 0;
        std::sort(t.begin(), t.end());
        const double med = t[t.size() / 2];
        median_of[n] = med;
        // The last layer's attention output, MLP and o_proj run only for the nl logit rows.
        const double last_rest = (layer_params / c.num_layers - qkv_params) * (n - nl);
        const double gflops = 2.0 * (layer_params * n - last_rest + head_params * nl) / med / 1e9;
        const double gbs = bytes / med / 1e9;
        out["passes"].push_back({{"tokens", n}, {"ms", med * 1e3}, {"best_ms", t.front() * 1e3}, {"tokens_per_s", n / med},
                                 {"weight_gbs", gbs}, {"gflops", gflops}});
        if (machine) out["passes"].back()["read_gbs"] = read_gbs;
        if (!as_json) {
            std::printf("| %s | %s | %d | %.2f | %.1f | %.1f | %.1f |", name.c_str(), weight_type_name(model->weight_type()), n,
                        med * 1e3, n / med, gbs, gflops);
            if (machine) std::printf(" %.0f%% | %.0f%% |", 100 * gbs / read_gbs, 100 * gflops / peak);
            std::printf("\n");
            std::fflush(stdout);
        }
        if (csv)
            csv << name << "," << weight_type_name(model->weight_type()) << "," << n << "," << med * 1e3 << "," << n / med << ","
                << gbs << "," << gflops << "," << threads << "," << t.front() * 1e3 << "," << read_gbs << "\n";
    }
    // The bound beside any speedup (speedup_bound.h): what block diffusion at B = 32, S = 8 can gain
    // over AR decoding with these pass costs, every sub-block decided by its first pass.
    const int B = 32, S = 8;
    std::string bound_text;
    if (median_of.count(1) && median_of.count(S) && median_of.count(2 * S) && median_of.count(B)) {
        const PassCosts pc{B, S, median_of[1], median_of[S], median_of[2 * S], median_of[B]};
        const double dual = best_case_speedup(pc, CacheMode::Dual), overlap = best_case_speedup(pc, CacheMode::DualOverlap);
        out["best_case_speedup"] = {{"block_size", B}, {"sub_block_size", S}, {"dual", dual}, {"dual-overlap", overlap}};
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "best case against AR here (B=%d, S=%d, every sub-block decided by its first pass): dual %.2fx, "
                      "dual-overlap %.2fx",
                      B, S, dual, overlap);
        bound_text = buf;
    }
    if (as_json) std::cout << out.dump(2) << "\n";
    else if (!bound_text.empty()) std::printf("\n%s\n", bound_text.c_str());
    if (!as_json && machine)
        std::printf("\nmachine: %s, %d threads, read bandwidth %.1f GB/s, SGEMM peak %.0f GFLOP/s, kernels %s\n"
                    "(%% of bandwidth: of the mean of two read probes, right before and right after each size's passes)\n",
                    out["cpu"].get<std::string>().c_str(), threads, bw, peak, kernel_path_name());
    return 0;
}

}  // namespace fdl::cli
