// GPT-2's bytes_to_unicode: the 256 chars that byte-level BPE spells bytes with, and HF's
// ByteLevel decoder rule that maps a token's chars back to bytes.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fdl::tok {

struct ByteAlphabet {
    std::array<std::string, 256> enc;  // byte -> UTF-8 of its char
    std::array<int16_t, 324> dec;      // code point -> byte, -1 if not in the alphabet
    ByteAlphabet();
};

const ByteAlphabet& alphabet();

// HF ByteLevel decoder, one token: its chars mapped back to bytes when all of them belong to
// the byte alphabet, otherwise the token's own UTF-8.
std::string bytelevel_decode_token(std::string_view tok);

}  // namespace fdl::tok
