// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (Qwen2 style):
// added tokens matched first in the raw text, NFC (utf8proc), the file's own split regex
// (PCRE2), byte-to-unicode mapping, merges by rank. Matches HF `tokenizers` exactly.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fdl {

class Tokenizer {
public:
    // Reads tokenizer.json. Throws fdl::Error("<path>: <problem>") on any bad input.
    static Tokenizer from_file(const std::string& tokenizer_json);
    // Reads <dir>/tokenizer.json plus the added tokens listed in <dir>/added_tokens.json and
    // <dir>/tokenizer_config.json ("added_tokens_decoder") when those files exist.
    static Tokenizer from_model_dir(const std::string& dir);

    // Encodes like HF `encode(text, add_special_tokens=False)`: added tokens in the text are
    // recognised and become their ids. parse_special=false leaves special added tokens as plain
    // text (HF's encode_special_tokens / transformers' split_special_tokens); non-special added
    // tokens are still recognised. Invalid UTF-8 (HF never sees any: Python strings are valid)
    // is first replaced by U+FFFD, one per maximal invalid subpart. Thread-safe.
    std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
    // Decodes like HF `decode(ids, skip_special_tokens=skip_special)`; invalid UTF-8 becomes
    // U+FFFD; ids with no token are skipped (never a crash).
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
    // The raw bytes of one token (for added tokens, their content); "" for an id with no token.
    // It is exactly what decode() emits for the token before the final UTF-8 repair. Like HF,
    // the ByteLevel decoder rule applies to added tokens too: content made only of chars of the
    // byte alphabet is mapped back to bytes (printable ASCII such as "<|im_end|>" maps to
    // itself), any other content is emitted as is.
    std::string token_bytes(int32_t id) const;
    // Id of a token given by its exact string (vocab form or added-token content); -1 if none.
    int32_t token_id(std::string_view token) const;
    // One past the largest id that has a token.
    int32_t size() const;
    bool is_special(int32_t id) const;
    bool has_token(int32_t id) const;

    // Implementation details below (kept public-free through pimpl would cost a copy per call).
    struct Impl;
    Tokenizer();
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

private:
    Impl* impl_ = nullptr;
};

// Turns a stream of ids into text without ever emitting half a UTF-8 character: bytes of an
// incomplete sequence are held back until the next token completes them (or flush()).
class StreamDetokenizer {
public:
    explicit StreamDetokenizer(const Tokenizer& tok, bool skip_special = false)
        : tok_(tok), skip_special_(skip_special) {}
    std::string push(int32_t id);  // text that became complete with this token
    std::string flush();            // whatever is left (invalid bytes as U+FFFD)
private:
    const Tokenizer& tok_;
    bool skip_special_;
    std::string pending_;
};

}  // namespace fdl
