// The pre-tokenizer stage: Split steps (the file's regex or literal, run by PCRE2) and the final
// ByteLevel step (optional prefix space, GPT-2's regex) cut normalized text into words.
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fdl::tok {

// The pre-tokenizer regex HF's ByteLevel uses when use_regex is true (GPT-2's).
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Regex {
    pcre2_code* code = nullptr;
    Regex() = default;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    ~Regex() {
        if (code) pcre2_code_free(code);
    }
};

// Compiles a pattern (literal: matched as plain text). On a bad pattern returns null and sets
// `error` to what PCRE2 said.
std::unique_ptr<Regex> compile_regex(const std::string& pattern, bool literal, std::string& error);

struct PreStep {
    enum Kind { Split, ByteLevel } kind;
    const Regex* re = nullptr;  // Split: its pattern; ByteLevel: GPT-2 pattern or null
    bool removed = false;       // Split behavior "Removed" (else "Isolated")
    bool add_prefix_space = false;
};

struct PreTokenizer {
    std::vector<std::unique_ptr<Regex>> regexes;  // owners of the steps' patterns
    std::vector<PreStep> steps;

    // Cuts `text` into the words that BPE encodes one by one. Pieces that got a prefix space
    // live in `storage`; `md` is match data for PCRE2.
    void split(std::string_view text, std::vector<std::string_view>& words, std::deque<std::string>& storage,
               pcre2_match_data* md) const;
};

}  // namespace fdl::tok
