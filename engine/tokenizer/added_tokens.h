// Added tokens (HF's AddedVocabulary): the tokens listed apart from the BPE vocab, by id and by
// content, and the matchers that find them in text before anything else cuts it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/utf8.h"

namespace fdl::tok {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
    bool single_word = false;
};

// Literal multi-pattern matcher with aho-corasick LeftmostLongest semantics: the match that
// starts first wins; among those starting at the same byte, the longest.
struct LiteralMatcher {
    struct Pat {
        std::string text;
        size_t added;  // index into AddedVocabulary::tokens
    };
    std::vector<Pat> pats;
    std::array<std::vector<uint32_t>, 256> by_first;  // pattern indices, longest first

    void build(std::vector<Pat> p);
    bool empty() const { return pats.empty(); }
    // Next match at or after `from`: sets start/len/added and returns true.
    bool find(std::string_view s, size_t from, size_t& start, size_t& len, size_t& added) const {
        for (size_t i = from; i < s.size(); ++i) {
            const auto& cand = by_first[static_cast<unsigned char>(s[i])];
            for (uint32_t pi : cand) {
                const auto& t = pats[pi].text;
                if (t.size() <= s.size() - i && std::memcmp(s.data() + i, t.data(), t.size()) == 0) {
                    start = i;
                    len = t.size();
                    added = pats[pi].added;
                    return true;
                }
            }
        }
        return false;
    }
};

struct AddedVocabulary {
    std::vector<AddedToken> tokens;
    std::unordered_map<std::string, int32_t> by_content;  // content -> id
    std::vector<int32_t> index;                             // id -> index into tokens, -1
    // Tokens with normalized=false are looked for in the raw text, the others in each
    // normalized piece between those (their content normalized the same way).
    LiteralMatcher raw_matcher, norm_matcher;

    // Adds a token; one whose id is listed already replaces the earlier entry.
    void add(AddedToken t);
    // Rebuilds both matchers from the tokens. Called after every change.
    void build_matchers(const Normalizer& normalizer);

    // HF AddedVocabulary::find_matches: cuts `s` into (text, -1) and (token, id) pieces.
    template <class F>
    void split(std::string_view s, const LiteralMatcher& m, bool parse_special, F&& emit) const;
};

template <class F>
void AddedVocabulary::split(std::string_view s, const LiteralMatcher& m, bool parse_special, F&& emit) const {
    if (m.empty()) {
        if (!s.empty()) emit(s, -1);
        return;
    }
    size_t start_offset = 0, from = 0, mstart, mlen, ai;
    while (m.find(s, from, mstart, mlen, ai)) {
        from = mstart + mlen;
        const AddedToken& t = tokens[ai];
        size_t start = mstart, stop = mstart + mlen;
        if (start < start_offset) continue;  // swallowed by the previous token's rstrip
        if (!parse_special && t.special) continue;
        if (t.single_word) {
            bool start_space = start == 0 || !is_word_char(prev_cp(s, start));
            size_t k = stop;
            bool stop_space = stop == s.size() || !is_word_char(next_cp(s, k));
            if (!start_space || !stop_space) continue;
        }
        if (t.lstrip) {
            size_t ns = start;
            while (ns > start_offset) {
                size_t cs;
                int32_t c = prev_cp(s, ns, &cs);
                if (!is_rust_whitespace(c)) break;
                ns = cs;
            }
            start = ns;
        }
        if (t.rstrip) {
            while (stop < s.size()) {
                size_t k = stop;
                int32_t c = next_cp(s, k);
                if (!is_rust_whitespace(c)) break;
                stop = k;
            }
        }
        if (start_offset < start) emit(s.substr(start_offset, start - start_offset), -1);
        emit(s.substr(start, stop - start), t.id);
        start_offset = stop;
    }
    if (start_offset < s.size()) emit(s.substr(start_offset), -1);
}

}  // namespace fdl::tok
