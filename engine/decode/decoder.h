// The decoder registry: one entry per decoding mode. generate() (generate.h) checks a request
// and runs the decoder its mode names; a new decoder is a DecodeMode value, a file with its run
// function, and a line in the table in decoder.cpp.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "engine/decode/generate.h"

namespace fdl {

using DecodeFn = GenerateResult (*)(Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                                    const GenerateOptions& opts, const EventCallback& on_event,
                                    const std::atomic<bool>* cancel);

struct Decoder {
    DecodeMode mode;
    const char* name;         // as given to --mode and in --json output
    const char* description;  // one line for --help
    bool needs_mask_token;    // decodes masked cells (the model's tokenizer must have a mask token)
    DecodeFn run;
};

// Every registered decoder, in DecodeMode order.
const std::vector<Decoder>& decoders();
const Decoder& decoder_for(DecodeMode mode);

// The decoders themselves (ar_decoder.cpp, diffusion_decoder.cpp).
GenerateResult decode_ar(Model& model, KVCache& cache, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                         const EventCallback& on_event, const std::atomic<bool>* cancel);
GenerateResult decode_diffusion(Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                                const GenerateOptions& opts, const EventCallback& on_event,
                                const std::atomic<bool>* cancel);

}  // namespace fdl
