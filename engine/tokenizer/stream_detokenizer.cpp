// StreamDetokenizer: holds back the bytes of an incomplete UTF-8 character until a later token
// completes it, so that streamed text never shows half a character.
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace fdl {

std::string StreamDetokenizer::push(int32_t id) {
    if (!tok_.has_token(id)) return {};
    if (skip_special_ && tok_.is_special(id)) return {};
    pending_ += tok_.token_bytes(id);
    std::string out;
    size_t used = tok::utf8_lossy_append(pending_, out, false);
    pending_.erase(0, used);
    return out;
}

std::string StreamDetokenizer::flush() {
    std::string out;
    tok::utf8_lossy_append(pending_, out, true);
    pending_.clear();
    return out;
}

}  // namespace fdl
