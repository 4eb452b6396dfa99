// Tokenizer::encode / decode / StreamDetokenizer on arbitrary bytes, with the tiny fixture's
// tokenizer and the Qwen2.5 one. Byte 0 picks the tokenizer and the flags; the rest is the text,
// and is also read as a list of token ids (16-bit little endian, spread over a range that
// includes negative and unknown ids). Properties:
//   - encode gives ids that exist; decode always gives valid UTF-8;
//   - valid UTF-8 round-trips up to normalisation: NFC(decode(encode(s))) == NFC(s);
//   - streaming the ids one by one gives exactly decode(ids) (same skip_special).
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "fuzz_util.h"

namespace {

const fdl::Tokenizer& tokenizer(int which) {
    static const fdl::Tokenizer tiny = fdl::Tokenizer::from_model_dir(FIXTURES_DIR "/tiny/model");
    static const fdl::Tokenizer qwen = fdl::Tokenizer::from_file(FIXTURES_DIR "/tokenizer-qwen2.5/tokenizer.json");
    return which ? qwen : tiny;
}

bool valid_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t i = 0, n = utf8proc_ssize_t(s.size());
    while (i < n) {
        utf8proc_int32_t cp;
        const utf8proc_ssize_t r = utf8proc_iterate(p + i, n - i, &cp);
        if (r <= 0) return false;
        i += r;
    }
    return true;
}

std::string nfc(const std::string& s) {
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                                            &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::string r = n >= 0 && out ? std::string(reinterpret_cast<const char*>(out), size_t(n)) : s;
    std::free(out);
    return r;
}

std::string stream(const fdl::Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
    fdl::StreamDetokenizer sd(tok, skip_special);
    std::string out;
    for (int32_t id : ids) {
        const std::string piece = sd.push(id);
        FUZZ_CHECK(valid_utf8(piece));
        out += piece;
    }
    return out + sd.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const fdl::Tokenizer& tok = tokenizer(flags & 1);
    const bool parse_special = flags & 2, skip_special = flags & 4;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

    const std::vector<int32_t> ids = tok.encode(text, parse_special);
    for (int32_t id : ids) FUZZ_CHECK(tok.has_token(id));
    const std::string back = tok.decode(ids, false);
    FUZZ_CHECK(valid_utf8(back));
    if (valid_utf8(text)) FUZZ_CHECK(nfc(back) == nfc(text));
    FUZZ_CHECK(stream(tok, ids, skip_special) == tok.decode(ids, skip_special));

    std::vector<int32_t> raw;
    const int32_t span = tok.size() + 8;
    for (size_t i = 1; i + 1 < size; i += 2) raw.push_back(int32_t((data[i] | (data[i + 1] << 8)) % span) - 4);
    const std::string d = tok.decode(raw, skip_special);
    FUZZ_CHECK(valid_utf8(d));
    FUZZ_CHECK(stream(tok, raw, skip_special) == d);
    return 0;
}
