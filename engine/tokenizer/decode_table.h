// The decode side: per id, the bytes that decode() emits (HF's ByteLevel decoder rule applied
// to the token) and whether the token counts as special.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"

namespace fdl::tok {

struct DecodeTable {
    std::vector<std::string> decoded;  // what decode emits for the id
    std::vector<uint8_t> has, special;
    int32_t size = 0;  // one past the largest id that has a token

    // Rebuilds the tables from the vocab and the added tokens (which win where both have an id).
    void build(const BpeModel& model, const AddedVocabulary& added);
    bool has_token(int32_t id) const { return id >= 0 && id < size && has[size_t(id)]; }
    // The tokens' bytes joined, ids with no token skipped, then made valid UTF-8.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;
};

}  // namespace fdl::tok
