#include "engine/tokenizer/decode_table.h"

#include <algorithm>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"

namespace fdl::tok {

void DecodeTable::build(const BpeModel& model, const AddedVocabulary& added) {
    const std::vector<std::string_view>& vocab_r = model.vocab_r;
    const std::vector<int32_t>& added_index = added.index;
    size = int32_t(std::max(vocab_r.size(), added_index.size()));
    while (size > 0) {
        size_t i = size_t(size - 1);
        if ((i < vocab_r.size() && vocab_r[i].data()) || (i < added_index.size() && added_index[i] >= 0)) break;
        --size;
    }
    decoded.assign(size_t(size), std::string());
    has.assign(size_t(size), 0);
    special.assign(size_t(size), 0);
    for (size_t i = 0; i < size_t(size); ++i) {
        if (i < added_index.size() && added_index[i] >= 0) {
            const AddedToken& t = added.tokens[size_t(added_index[i])];
            has[i] = 1;
            special[i] = t.special;
            decoded[i] = bytelevel_decode_token(t.content);
        } else if (i < vocab_r.size() && vocab_r[i].data()) {
            has[i] = 1;
            decoded[i] = bytelevel_decode_token(vocab_r[i]);
        }
    }
    // HF skips, when asked, every token whose string is a special token's content.
    for (const auto& t : added.tokens) {
        if (!t.special) continue;
        const int32_t v = model.vocab.get(t.content);
        if (v >= 0 && size_t(v) < special.size() && (size_t(v) >= added_index.size() || added_index[size_t(v)] < 0))
            special[size_t(v)] = 1;
    }
}

std::string DecodeTable::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || id >= size || !has[size_t(id)]) continue;
        if (skip_special && special[size_t(id)]) continue;
        bytes += decoded[size_t(id)];
    }
    if (is_valid_utf8(bytes)) return bytes;
    return utf8_lossy(bytes);
}

}  // namespace fdl::tok
