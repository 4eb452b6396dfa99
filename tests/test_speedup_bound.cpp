// The speedup's bound (engine/decode/speedup_bound.h): the formula, the pass costs stored in the
// data folder and read back, the bound in a diffusion request's statistics, and the compare line
// that shows it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/decode/generate.h"
#include "engine/decode/speedup_bound.h"
#include "engine/io/files.h"
#include "engine/model/model.h"
#ifdef FASTDLLM_HAVE_UI
#include "ui/view_model.h"
#endif

using namespace fdl;

namespace {

// XDG_DATA_HOME pointed at a fresh folder for the test's life (the previous value restored).
class DataFolder {
public:
    DataFolder() {
        dir_ = std::filesystem::temp_directory_path() / ("fdl-bound-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        const char* old = std::getenv("XDG_DATA_HOME");
        had_ = old != nullptr;
        if (old) old_ = old;
        ::setenv("XDG_DATA_HOME", dir_.c_str(), 1);
    }
    ~DataFolder() {
        if (had_) ::setenv("XDG_DATA_HOME", old_.c_str(), 1);
        else ::unsetenv("XDG_DATA_HOME");
        std::filesystem::remove_all(dir_);
    }
    std::string store() const { return (dir_ / "fastdllm" / "pass_costs.json").string(); }
    // A copy of a model folder inside this one.
    std::string copy_of(const std::string& model) const {
        const std::filesystem::path to = dir_ / "model";
        std::filesystem::remove_all(to);
        std::filesystem::copy(model, to, std::filesystem::copy_options::recursive);
        return to.string();
    }

private:
    std::filesystem::path dir_;
    std::string old_;
    bool had_ = false;
};

}  // namespace

// B = 32, S = 8: AR 32 one-token passes against 5 whole-block passes (dual) or 2 whole-block
// passes and 3 of 16 tokens (dual-overlap).
TEST(SpeedupBound, Formula) {
    const PassCosts pc{32, 8, 1.0, 3.0, 4.0, 8.0};
    EXPECT_DOUBLE_EQ(best_case_speedup(pc, CacheMode::Dual), 32.0 / (5 * 8.0));
    EXPECT_DOUBLE_EQ(best_case_speedup(pc, CacheMode::Prefix), 32.0 / (5 * 8.0));
    EXPECT_DOUBLE_EQ(best_case_speedup(pc, CacheMode::None), 32.0 / (5 * 8.0));
    EXPECT_DOUBLE_EQ(best_case_speedup(pc, CacheMode::DualOverlap), 32.0 / (2 * 8.0 + 3 * 4.0));
    // A pass of 32 tokens that costs no more than a pass of one: B / (B/S + 1) = 6.4.
    EXPECT_DOUBLE_EQ(best_case_speedup({32, 8, 1, 1, 1, 1}, CacheMode::Dual), 6.4);
    EXPECT_EQ(best_case_speedup({}, CacheMode::Dual), 0);
    EXPECT_EQ(best_case_speedup({32, 8, 1, 1, 1, 0}, CacheMode::Dual), 0);
}

// Timed once, stored under the model folder's key, found again; the bound then reaches a
// diffusion request's statistics and its Finished event without timing again, and an AR request
// has none.
TEST(SpeedupBound, TimedStoredAndReported) {
    DataFolder data;
    LoadOptions lo;
    lo.weight_type = WeightType::F32;
    // A copy of the tiny model in a folder of its own: a key no other test's request has timed.
    const std::string dir = data.copy_of(FIXTURES_DIR "/tiny/model");
    auto m = Model::load(dir, lo);
    EXPECT_FALSE(known_pass_costs(*m, 16, 4));
    const PassCosts pc = pass_costs(*m, 16, 4);
    EXPECT_GT(pc.one, 0);
    EXPECT_GT(pc.block, 0);
    EXPECT_EQ(pc.block_size, 16);
    ASSERT_TRUE(file_exists(data.store()));
    const std::string text = read_file(data.store());
    EXPECT_NE(text.find("f32"), std::string::npos) << text;
    EXPECT_NE(text.find("B=16 S=4"), std::string::npos) << text;
    const std::optional<PassCosts> again = known_pass_costs(*m, 16, 4);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->one, pc.one);
    EXPECT_EQ(again->block, pc.block);
    EXPECT_FALSE(known_pass_costs(*m, 32, 8)) << "another block size is another key";

    GenerateOptions g;
    g.mode = DecodeMode::Diffusion;
    g.block_size = 16;
    g.sub_block_size = 4;
    g.max_new_tokens = 16;
    KVCache cache = m->make_cache();
    double in_event = -1;
    const GenerateResult r = generate(*m, cache, {1, 2, 3}, g, [&](const DecodeEvent& ev) {
        if (ev.type == DecodeEvent::Type::Finished) in_event = ev.stats.best_case_speedup;
    });
    EXPECT_DOUBLE_EQ(r.stats.best_case_speedup, best_case_speedup(pc, CacheMode::Dual));
    EXPECT_DOUBLE_EQ(in_event, r.stats.best_case_speedup);

    g.cache = CacheMode::DualOverlap;
    KVCache c2 = m->make_cache();
    EXPECT_DOUBLE_EQ(generate(*m, c2, {1, 2, 3}, g).stats.best_case_speedup, best_case_speedup(pc, CacheMode::DualOverlap));

    g.mode = DecodeMode::AR;
    KVCache c3 = m->make_cache();
    EXPECT_EQ(generate(*m, c3, {1, 2, 3}, g).stats.best_case_speedup, 0);
}

// Not known and not asked for: a request leaves the bound at 0 and times nothing; asked for
// (compare mode does), it is timed before decoding.
TEST(SpeedupBound, TimedOnlyWhenAsked) {
    DataFolder data;
    LoadOptions lo;
    lo.weight_type = WeightType::BF16;
    auto m = Model::load(data.copy_of(FIXTURES_DIR "/tiny/model"), lo);
    GenerateOptions g;
    g.mode = DecodeMode::Diffusion;
    g.block_size = 16;
    g.sub_block_size = 8;
    g.max_new_tokens = 16;
    KVCache c = m->make_cache();
    EXPECT_EQ(generate(*m, c, {1, 2, 3}, g).stats.best_case_speedup, 0);
    EXPECT_FALSE(file_exists(data.store()));
    g.time_pass_costs = true;
    KVCache c2 = m->make_cache();
    EXPECT_GT(generate(*m, c2, {1, 2, 3}, g).stats.best_case_speedup, 0);
    EXPECT_TRUE(file_exists(data.store()));
}

#ifdef FASTDLLM_HAVE_UI
// The compare line puts the bound right after the speedup, and leaves it out when unknown.
TEST(SpeedupBound, CompareLine) {
    DecodeStats ar, d;
    ar.generated_tokens = d.generated_tokens = 20;
    ar.decode_seconds = 2.0;
    d.decode_seconds = 1.0;
    d.nfe = 5;
    ar.nfe = 20;
    const std::string plain = ui::compare_summary(ar, d);
    EXPECT_EQ(plain.rfind("speedup 2.00x: diffusion", 0), 0u) << plain;
    d.best_case_speedup = 2.4449;
    const std::string with = ui::compare_summary(ar, d);
    EXPECT_EQ(with.rfind("speedup 2.00x (best case here 2.44x): diffusion", 0), 0u) << with;
}
#endif
