// ModelConfig::parse on arbitrary text. What it accepts must be a shape the engine can run:
// every size positive, heads divisible, an even head_dim, positive rope theta and norm epsilon.
#include <cstdint>
#include <string>

#include "engine/io/error.h"
#include "engine/model/model_config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const fdl::ModelConfig c = fdl::ModelConfig::parse(text, "config.json");
        FUZZ_CHECK(c.hidden_size >= 1 && c.num_layers >= 1 && c.num_heads >= 1 && c.num_kv_heads >= 1);
        FUZZ_CHECK(c.head_dim >= 2 && c.head_dim % 2 == 0);
        FUZZ_CHECK(c.num_heads % c.num_kv_heads == 0);
        FUZZ_CHECK(c.intermediate_size >= 1 && c.vocab_size >= 1 && c.max_position_embeddings >= 1 && c.bd_size >= 1);
        FUZZ_CHECK(c.rope_theta > 0 && c.rms_norm_eps > 0);
        FUZZ_CHECK(c.parameter_count() > 0);
        FUZZ_CHECK(!c.describe().empty());
    } catch (const fdl::Error&) {
    }
    return 0;
}
