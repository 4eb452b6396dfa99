// Every decoding trace of fixtures/tiny/traces.json (an independent float64 implementation of
// the algorithm of docs/design.md) reproduced exactly: tokens, NFE and every step's decisions.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/decode/generate.h"

using namespace fdl;
using json = nlohmann::json;

namespace {

json load_traces() {
    std::ifstream in(FIXTURES_DIR "/tiny/traces.json");
    return json::parse(in);
}

struct TraceCase {
    int index;
    json trace;
    CacheMode cache;
};

// Keeps ctest's listing readable (the default prints the object's bytes).
void PrintTo(const TraceCase& c, std::ostream* os) { *os << "trace " << c.index << " cache " << cache_mode_name(c.cache); }

std::vector<TraceCase> cases() {
    std::vector<TraceCase> out;
    json all = load_traces();
    int i = 0;
    for (auto& t : all["traces"]) {
        if (t["mode"] == "ar") {
            out.push_back({i, t, CacheMode::Prefix});
        } else if (t["dual_cache"].get<bool>()) {
            out.push_back({i, t, CacheMode::Dual});
        } else {
            // prefix must reproduce dual_cache=false; recomputing everything must give the same.
            out.push_back({i, t, CacheMode::Prefix});
            out.push_back({i, t, CacheMode::None});
        }
        i++;
    }
    return out;
}

std::unique_ptr<Model>& tiny() {
    static std::unique_ptr<Model> m = Model::load(FIXTURES_DIR "/tiny/model");
    return m;
}

class TraceTest : public ::testing::TestWithParam<TraceCase> {};

}  // namespace

TEST_P(TraceTest, Reproduces) {
    const TraceCase& c = GetParam();
    const json& t = c.trace;
    Model& model = *tiny();
    GenerateOptions o;
    o.mode = t["mode"] == "ar" ? DecodeMode::AR : DecodeMode::Diffusion;
    o.max_new_tokens = t["max_new_tokens"];
    if (o.mode == DecodeMode::Diffusion) {
        o.block_size = t["block_size"];
        o.sub_block_size = t["sub_block_size"];
        o.threshold = t["threshold"];
    }
    o.cache = c.cache;
    KVCache cache = model.make_cache();
    const std::vector<int32_t> prompt = t["prompt"].get<std::vector<int32_t>>();
    GenerateResult r = generate(model, cache, prompt, o);

    EXPECT_EQ(r.tokens, t["tokens"].get<std::vector<int32_t>>());
    EXPECT_EQ(r.stats.nfe, t["nfe"].get<int>());
    if (!t.contains("steps")) return;
    const json& steps = t["steps"];
    ASSERT_EQ(r.steps.size(), steps.size());
    for (size_t i = 0; i < steps.size(); i++) {
        const json& s = steps[i];
        const StepRecord& g = r.steps[i];
        ASSERT_EQ(step_kind_name(g.kind), s["kind"].get<std::string>()) << "step " << i;
        if (s.contains("next")) {
            EXPECT_EQ(g.next, s["next"].get<int>()) << "step " << i;
        }
        if (s.contains("tokens")) {
            EXPECT_EQ(g.tokens, s["tokens"].get<int>()) << "step " << i;
        }
        if (s.contains("block_start")) {
            EXPECT_EQ(g.block_start, s["block_start"].get<int>()) << "step " << i;
        }
        if (!s.contains("unmasked")) continue;
        ASSERT_EQ(g.unmasked.size(), s["unmasked"].size()) << "step " << i;
        for (size_t k = 0; k < g.unmasked.size(); k++) {
            const json& u = s["unmasked"][k];
            EXPECT_EQ(g.unmasked[k].position, u[0].get<int>()) << "step " << i;
            EXPECT_EQ(g.unmasked[k].token, u[1].get<int>()) << "step " << i;
            EXPECT_NEAR(g.unmasked[k].confidence, u[2].get<double>(), 1e-3) << "step " << i;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Fixture, TraceTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<TraceCase>& info) {
                             const json& t = info.param.trace;
                             // Appended piecewise: "t" + std::string trips GCC 12's -Wrestrict false positive.
                             std::string name = "t";
                             name += std::to_string(info.param.index);
                             name += "_";
                             name += t["mode"].get<std::string>();
                             name += "_";
                             name += cache_mode_name(info.param.cache);
                             return name;
                         });

// A diffusion trace's decoding settings (the tests below vary the cache or the unmasking rule).
static GenerateOptions diffusion_options(const json& t) {
    GenerateOptions o;
    o.max_new_tokens = t["max_new_tokens"];
    o.block_size = t["block_size"];
    o.sub_block_size = t["sub_block_size"];
    o.threshold = t["threshold"];
    return o;
}

// dual-overlap (ours, not in the paper, so no fixture): on the fixture's diffusion prompts it must
// run one whole-block pass per block at most, price every pass by its size, and reduce to the
// paper's DualCache exactly when a block is one sub-block.
TEST(DualOverlap, OneWholeBlockPassPerBlock) {
    Model& model = *tiny();
    int checked = 0;
    const json all = load_traces();  // kept alive: a temporary's ["traces"] would dangle
    for (const auto& t : all["traces"]) {
        if (t["mode"] != "diffusion") continue;
        GenerateOptions o = diffusion_options(t);
        o.cache = CacheMode::DualOverlap;
        const std::vector<int32_t> prompt = t["prompt"].get<std::vector<int32_t>>();
        KVCache cache = model.make_cache();
        GenerateResult r = generate(model, cache, prompt, o);
        const DecodeStats& st = r.stats;
        EXPECT_LE(st.block_passes, st.commit_passes + 1);
        int passes = 0;
        for (const auto& [n, k] : st.passes_by_size) {
            passes += k;
            const bool prefill = st.prefill_passes > 0 && n == st.prefilled_tokens;
            EXPECT_TRUE(n == o.sub_block_size || n == 2 * o.sub_block_size || n == o.block_size || prefill) << n;
        }
        EXPECT_EQ(passes, st.nfe);
        for (int32_t tok : r.tokens) EXPECT_NE(tok, model.mask_token_id());

        o.sub_block_size = o.block_size;
        KVCache c1 = model.make_cache(), c2 = model.make_cache();
        GenerateResult overlap = generate(model, c1, prompt, o);
        o.cache = CacheMode::Dual;
        GenerateResult dual = generate(model, c2, prompt, o);
        EXPECT_EQ(overlap.tokens, dual.tokens);
        EXPECT_EQ(overlap.stats.nfe, dual.stats.nfe);
        checked++;
    }
    EXPECT_GT(checked, 0);
}

// Every decoder accounts for each forward pass in passes_by_size.
TEST(PassSizes, SumToNfe) {
    Model& model = *tiny();
    for (DecodeMode mode : {DecodeMode::AR, DecodeMode::Diffusion}) {
        for (CacheMode cache : {CacheMode::None, CacheMode::Prefix, CacheMode::Dual, CacheMode::DualOverlap}) {
            GenerateOptions o;
            o.mode = mode;
            o.cache = cache;
            o.max_new_tokens = 64;
            KVCache c = model.make_cache();
            GenerateResult r = generate(model, c, std::vector<int32_t>(40, 5), o);
            int passes = 0;
            for (const auto& [n, k] : r.stats.passes_by_size) passes += k;
            EXPECT_EQ(passes, r.stats.nfe) << decode_mode_name(mode) << " " << cache_mode_name(cache);
        }
    }
}

// --unmask prefix (ours, not in the paper, so no fixture). On the fixture's diffusion prompts:
// every step decides the leftmost masked cell of its sub-block and the confident cells right
// after it, no others, so decided cells always form a prefix of the block; and with one cell
// per sub-block both rules are the same rule.
TEST(UnmaskPrefix, FillsEachSubBlockLeftToRight) {
    Model& model = *tiny();
    int checked = 0;
    const json all = load_traces();
    for (const auto& t : all["traces"]) {
        if (t["mode"] != "diffusion") continue;
        GenerateOptions o = diffusion_options(t);
        o.unmask = UnmaskOrder::Prefix;
        const std::vector<int32_t> prompt = t["prompt"].get<std::vector<int32_t>>();
        for (CacheMode cache : {CacheMode::None, CacheMode::Dual}) {
            o.cache = cache;
            KVCache kv = model.make_cache();
            const GenerateResult r = generate(model, kv, prompt, o);
            int next = -1;  // the first position not yet decided in the current block
            for (const StepRecord& s : r.steps) {
                if (s.kind == StepKind::Prefill || s.kind == StepKind::Commit) {
                    next = -1;
                    continue;
                }
                ASSERT_FALSE(s.unmasked.empty());
                const int first = s.unmasked[0].position;
                if (next >= 0) {
                    EXPECT_EQ(first, next) << "a step skipped a masked cell";
                }
                for (size_t i = 0; i < s.unmasked.size(); i++) {
                    EXPECT_EQ(s.unmasked[i].position, first + int(i));
                    if (i > 0) {
                        EXPECT_GT(s.unmasked[i].confidence, o.threshold);
                    }
                }
                next = first + int(s.unmasked.size());
            }
            for (int32_t tok : r.tokens) EXPECT_NE(tok, model.mask_token_id());
        }
        o.sub_block_size = 1;
        o.cache = CacheMode::Dual;
        KVCache c1 = model.make_cache(), c2 = model.make_cache();
        const GenerateResult prefix = generate(model, c1, prompt, o);
        o.unmask = UnmaskOrder::Confidence;
        const GenerateResult paper = generate(model, c2, prompt, o);
        EXPECT_EQ(prefix.tokens, paper.tokens);
        EXPECT_EQ(prefix.stats.nfe, paper.stats.nfe);
        checked++;
    }
    EXPECT_GT(checked, 0);
}
