// y[M, out] = x[M, in] @ W^T for the four weight types, at M = 1 (AR step), 8 (DualCache
// sub-block), 32 (full block) and 512 (prompt), on a Qwen2.5-1.5B MLP-shaped matrix. Four
// copies are used in turn so the weights come from memory, not from the 32 MB L3, as in a pass.
// Run: build/bench/bench_kernels   (reports GB/s of weights streamed and GFLOP/s)
#include <benchmark/benchmark.h>

#include <random>

#include "engine/model/model.h"
#include "engine/parallel/threads.h"

namespace {

void run(benchmark::State& state, fdl::WeightType type) {
    static const int threads = fdl::set_threads(0);
    (void)threads;
    const int m = int(state.range(0)), in = 1536, out = 8960;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-0.05f, 0.05f);
    std::vector<float> w(size_t(in) * out), x(size_t(m) * in), y(size_t(m) * out);
    for (auto& v : w) v = d(rng);
    for (auto& v : x) v = d(rng);
    std::vector<fdl::Linear> ls(4);
    for (auto& l : ls) {
        l.in = in;
        l.out = out;
        l.set(w, type);
    }
    size_t i = 0;
    for (auto _ : state) {
        ls[i++ % ls.size()].apply(x.data(), m, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["weight_GB/s"] = benchmark::Counter(double(ls[0].bytes()), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * in * out, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_F32(benchmark::State& s) { run(s, fdl::WeightType::F32); }
void BM_BF16(benchmark::State& s) { run(s, fdl::WeightType::BF16); }
void BM_INT8(benchmark::State& s) { run(s, fdl::WeightType::INT8); }
void BM_INT4(benchmark::State& s) { run(s, fdl::WeightType::INT4); }

}  // namespace

BENCHMARK(BM_F32)->Arg(1)->Arg(8)->Arg(32)->Arg(512)->UseRealTime();
BENCHMARK(BM_BF16)->Arg(1)->Arg(8)->Arg(32)->Arg(512)->UseRealTime();
BENCHMARK(BM_INT8)->Arg(1)->Arg(8)->Arg(32)->Arg(512)->UseRealTime();
BENCHMARK(BM_INT4)->Arg(1)->Arg(8)->Arg(32)->Arg(512)->UseRealTime();
