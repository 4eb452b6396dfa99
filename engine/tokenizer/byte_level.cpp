#include "engine/tokenizer/byte_level.h"

#include "engine/tokenizer/utf8.h"

namespace fdl::tok {

ByteAlphabet::ByteAlphabet() {
    dec.fill(-1);
    std::array<int32_t, 256> cp{};
    std::array<bool, 256> direct{};
    for (int b = 33; b <= 126; ++b) direct[b] = true;
    for (int b = 161; b <= 172; ++b) direct[b] = true;
    for (int b = 174; b <= 255; ++b) direct[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? b : 256 + n++;
    for (int b = 0; b < 256; ++b) {
        append_cp(enc[b], cp[b]);
        dec[size_t(cp[b])] = int16_t(b);
    }
}

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

std::string bytelevel_decode_token(std::string_view tok) {
    const auto& a = alphabet();
    std::string out;
    out.reserve(tok.size());
    size_t i = 0;
    while (i < tok.size()) {
        int32_t cp = next_cp(tok, i);
        if (cp < 0 || cp >= int32_t(a.dec.size()) || a.dec[size_t(cp)] < 0) return std::string(tok);
        out.push_back(char(a.dec[size_t(cp)]));
    }
    return out;
}

}  // namespace fdl::tok
