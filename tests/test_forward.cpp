// The forward pass against logits from an independent float64 reference (fixtures/tiny).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/io/error.h"

#include "engine/model/model.h"
#include "engine/io/safetensors.h"

using namespace fdl;

namespace {

struct Expected {
    SafeTensors st = SafeTensors::open_file(FIXTURES_DIR "/tiny/expected.safetensors");
    std::vector<int32_t> ints(const std::string& name) {
        const TensorView& t = st.get(name);
        std::vector<int32_t> out(size_t(t.numel()));
        for (size_t i = 0; i < out.size(); i++) {
            int64_t v;
            std::memcpy(&v, t.data + 8 * i, 8);
            out[i] = int32_t(v);
        }
        return out;
    }
    std::vector<float> floats(const std::string& name) {
        const TensorView& t = st.get(name);
        std::vector<float> out(size_t(t.numel()));
        to_f32(t, out.data());
        return out;
    }
};

// Largest |a - b| over the compared rows.
float max_diff(const std::vector<float>& got, const std::vector<float>& want, size_t offset = 0) {
    float m = 0;
    for (size_t i = 0; i < got.size(); i++) m = std::max(m, std::fabs(got[i] - want[offset + i]));
    return m;
}

class ForwardTest : public ::testing::Test {
protected:
    void SetUp() override {
        model = Model::load(FIXTURES_DIR "/tiny/model");
        ids = ex.ints("ids");
        V = model->config().vocab_size;
        cache = model->make_cache();
        cache.reserve(64);
    }
    std::unique_ptr<Model> model;
    Expected ex;
    std::vector<int32_t> ids;
    KVCache cache;
    int V = 0;
};

}  // namespace

TEST_F(ForwardTest, CausalMatchesReference) {
    std::vector<float> logits(size_t(48) * V);
    model->forward(cache, {ids.data(), 48, 0, 48, AttnMask::Causal, 0, 0, 48}, logits.data());
    EXPECT_LT(max_diff(logits, ex.floats("causal.logits")), 2e-3f);
}

TEST_F(ForwardTest, BlockCausalMatchesReference) {
    std::vector<float> logits(size_t(48) * V);
    model->forward(cache, {ids.data(), 48, 0, 48, AttnMask::BlockCausal, 16, 0, 48}, logits.data());
    EXPECT_LT(max_diff(logits, ex.floats("block16.logits")), 2e-3f);
}

TEST_F(ForwardTest, CachedContinuationMatchesReference) {
    // Prefill ids[0:32] with the block mask, then run ids[32:48] against the cache.
    model->forward(cache, {ids.data(), 32, 0, 32, AttnMask::BlockCausal, 16, 0, 0}, nullptr);
    std::vector<float> logits(size_t(16) * V);
    model->forward(cache, {ids.data() + 32, 16, 32, 48, AttnMask::BlockCausal, 16, 0, 16}, logits.data());
    EXPECT_LT(max_diff(logits, ex.floats("block16.logits"), size_t(32) * V), 2e-3f);
}

TEST_F(ForwardTest, DualCacheSubBlockMatchesReference) {
    const std::vector<int32_t> ids2 = ex.ints("dual.ids2");
    ASSERT_EQ(ids2.size(), 48u);
    model->forward(cache, {ids.data(), 32, 0, 32, AttnMask::BlockCausal, 16, 0, 0}, nullptr);
    model->forward(cache, {ids.data() + 32, 16, 32, 48, AttnMask::BlockCausal, 16, 0, 0}, nullptr);
    std::vector<float> logits(size_t(4) * V);
    model->forward(cache, {ids2.data() + 40, 4, 40, 48, AttnMask::Full, 0, 0, 4}, logits.data());
    EXPECT_LT(max_diff(logits, ex.floats("dual.logits")), 2e-3f);
}

// The last layer runs past attention only for the rows that produce logits: a pass asking for
// rows in the middle must still give the reference's logits there, and must leave every row's
// K/V in the cache (the continuation reads them).
TEST_F(ForwardTest, LogitsForSomeRowsMatchReference) {
    std::vector<float> logits(size_t(5) * V);
    model->forward(cache, {ids.data(), 32, 0, 32, AttnMask::BlockCausal, 16, 20, 5}, logits.data());
    EXPECT_LT(max_diff(logits, ex.floats("block16.logits"), size_t(20) * V), 2e-3f);
    std::vector<float> one(static_cast<size_t>(V));
    model->forward(cache, {ids.data() + 32, 16, 32, 48, AttnMask::BlockCausal, 16, 15, 1}, one.data());
    EXPECT_LT(max_diff(one, ex.floats("block16.logits"), size_t(47) * V), 2e-3f);
}

TEST_F(ForwardTest, OutOfVocabularyTokenIsAnError) {
    std::vector<int32_t> bad = {1, 2, 396};
    std::vector<float> logits(static_cast<size_t>(V));
    EXPECT_THROW(model->forward(cache, {bad.data(), 3, 0, 3, AttnMask::Causal, 0, 2, 1}, logits.data()), Error);
}
