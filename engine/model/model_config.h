// The model hyper-parameters and stop tokens, read from a Hugging Face model folder: config.json
// (required; its keys are those of the architecture's entry, architecture.h) and the stop tokens of
// generation_config.json (optional). The tokenizer files are read by Tokenizer::from_model_dir.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fdl {

struct Architecture;

struct ModelConfig {
    std::string dir;
    std::string name;           // folder name, for display
    std::string architecture;   // config.json's name, e.g. Qwen2ForCausalLM or Fast_dLLM_QwenForCausalLM
    // Its entry in the architecture table (set by parse; lives as long as the program). A config
    // built in code may leave it null: architecture_of() then looks the name up.
    const Architecture* arch = nullptr;
    bool is_diffusion = false;  // block-diffusion (Fast-dLLM v2) model: the entry's block_diffusion
    int hidden_size = 0;
    int num_layers = 0;
    int num_heads = 0;
    int num_kv_heads = 0;
    int head_dim = 0;
    int intermediate_size = 0;
    int vocab_size = 0;
    int max_position_embeddings = 32768;
    int bd_size = 32;           // trained block size (diffusion models)
    double rope_theta = 10000.0;
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;
    // Earlier exchanges a chat prompt keeps (-1: all). From config.json's
    // "fastdllm_chat": {"history_turns": N}: the demo models, trained on single-turn samples, set 0.
    int chat_history_turns = -1;
    std::vector<int32_t> eos_token_ids;  // stop tokens (config + generation_config)

    // Reads <dir>/config.json and the optional files. Throws fdl::Error naming the file.
    static ModelConfig from_dir(const std::string& dir);
    // Parses the text of a config.json (used by from_dir and by the fuzzer).
    static ModelConfig parse(const std::string& text, const std::string& file);
    std::string describe() const;  // one line: "block-diffusion Qwen2, 24 layers, hidden 896, ..."
    int64_t parameter_count() const;
};

}  // namespace fdl
