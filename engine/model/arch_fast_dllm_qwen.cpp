// Fast-dLLM v2 (Fast_dLLM_QwenForCausalLM): a Qwen2.5 model fine-tuned to decode blocks of
// tokens in parallel. Same tensors and config as Qwen2; trained with a block-causal mask of
// config.json's "bd_size", with "|<MASK>|" (an added token of its tokenizer) in the cells not
// yet decoded.
#include "engine/model/architecture.h"

namespace fdl {

Architecture fast_dllm_qwen_architecture() {
    Architecture a = qwen2_architecture();
    a.name = "Fast_dLLM_QwenForCausalLM";
    a.model_type = "Fast_dLLM_Qwen";
    a.block_diffusion = true;
    a.mask = AttnMask::BlockCausal;
    a.mask_token = "|<MASK>|";
    return a;
}

}  // namespace fdl
