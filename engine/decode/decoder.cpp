#include "engine/decode/decoder.h"

#include "engine/io/error.h"

namespace fdl {

const std::vector<Decoder>& decoders() {
    static const std::vector<Decoder> table = {
        {DecodeMode::AR, "ar", "autoregressive: one token per forward pass, causal KV cache", false, decode_ar},
        {DecodeMode::Diffusion, "diffusion",
         "Fast-dLLM v2 block diffusion: blocks of masked cells decided in parallel by confidence", true,
         decode_diffusion},
    };
    return table;
}

const Decoder& decoder_for(DecodeMode mode) {
    for (const Decoder& d : decoders())
        if (d.mode == mode) return d;
    throw Error("no decoder for mode " + std::to_string(int(mode)));
}

const char* decode_mode_name(DecodeMode m) {
    for (const Decoder& d : decoders())
        if (d.mode == m) return d.name;
    return "?";
}

bool parse_decode_mode(const std::string& s, DecodeMode& out) {
    for (const Decoder& d : decoders())
        if (s == d.name) {
            out = d.mode;
            return true;
        }
    return false;
}

}  // namespace fdl
