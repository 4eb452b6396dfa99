// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json, matching HF `tokenizers`.
//
// Pipeline of encode(), as in HF TokenizerImpl::encode_single_sequence:
//   1. (our addition) invalid UTF-8 in the input becomes U+FFFD, one per maximal invalid
//      subpart (HF only ever sees valid str, so there is nothing to match there);
//   2. added tokens with normalized=false are found in the raw text (leftmost, then longest,
//      like aho-corasick LeftmostLongest), honouring lstrip/rstrip/single_word;
//   3. each piece between them is normalized (NFC via utf8proc), then added tokens with
//      normalized=true are found in it (their content normalized the same way);
//   4. the pre-tokenizer steps (Split with the file's regex run by PCRE2, then ByteLevel)
//      cut it into words; 5. each word's bytes map to byte-level symbols and are merged by
//      rank exactly like HF's Word::merge_all (a heap ordered by rank, then position).
// decode() maps each id to its token (added tokens first), drops special added tokens on
// request, applies the ByteLevel decoder rule per token (a token all of whose chars belong to
// the byte alphabet becomes those bytes, any other token its own UTF-8) and finishes with
// a lossy UTF-8 conversion like Rust's String::from_utf8_lossy.
//
// This file glues the stages together; each lives in its own file: utf8 (1), added_tokens
// (2, 3), normalizer (3), pre_tokenizer (4), bpe with byte_level and hash_maps (5),
// decode_table (decode), loader with json_access and tokenizer_json_sax (reading the files).
#include "engine/tokenizer/tokenizer.h"

#include <deque>
#include <filesystem>
#include <memory>

#include "engine/io/error.h"
#include "engine/tokenizer/decode_table.h"
#include "engine/tokenizer/loader.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace fdl {

struct Tokenizer::Impl : tok::TokenizerTables {
    tok::DecodeTable decoding;

    // Rebuilds the per-id tables and the added-token matchers and empties the word cache.
    // Called after every change.
    void finish();
    void encode_words(std::string_view normalized, std::vector<int32_t>& out, pcre2_match_data* md) const;
};

void Tokenizer::Impl::finish() {
    decoding.build(model, added);
    added.build_matchers(normalizer);
    model.clear_cache();
}

void Tokenizer::Impl::encode_words(std::string_view text, std::vector<int32_t>& out, pcre2_match_data* md) const {
    if (text.empty()) return;  // HF drops empty splits
    std::deque<std::string> storage;  // pieces that got a prefix space
    std::vector<std::string_view> words;
    pre_tokenizer.split(text, words, storage, md);
    for (std::string_view w : words) model.encode_word(w, out);
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() { delete impl_; }
Tokenizer::Tokenizer(Tokenizer&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }
Tokenizer& Tokenizer::operator=(Tokenizer&& o) noexcept {
    if (this != &o) {
        delete impl_;
        impl_ = o.impl_;
        o.impl_ = nullptr;
    }
    return *this;
}

Tokenizer Tokenizer::from_file(const std::string& tokenizer_json) {
    auto impl = std::make_unique<Impl>();
    tok::load_tokenizer_json(tokenizer_json, *impl);
    impl->finish();
    Tokenizer t;
    t.impl_ = impl.release();
    return t;
}

Tokenizer Tokenizer::from_model_dir(const std::string& dir) {
    Tokenizer t = from_file((std::filesystem::path(dir) / "tokenizer.json").string());
    if (tok::load_side_files(dir, *t.impl_)) t.impl_->finish();
    return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
    std::vector<int32_t> out;
    if (!impl_ || text.empty()) return out;
    const Impl& im = *impl_;
    // Invalid UTF-8 (which HF never receives: Python strings are always valid) is first made
    // valid the way Rust's from_utf8_lossy would: one U+FFFD per maximal invalid subpart.
    std::string fixed;
    if (!tok::is_valid_utf8(text)) {
        fixed = tok::utf8_lossy(text);
        text = fixed;
    }
    out.reserve(text.size() / 3 + 4);
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create(4, nullptr), pcre2_match_data_free);
    if (!md) throw Error("tokenizer: out of memory");
    im.added.split(text, im.added.raw_matcher, parse_special, [&](std::string_view piece, int32_t id) {
        if (id >= 0) {
            out.push_back(id);
            return;
        }
        std::string norm = im.normalizer.apply(piece);
        im.added.split(norm, im.added.norm_matcher, parse_special, [&](std::string_view p, int32_t id2) {
            if (id2 >= 0)
                out.push_back(id2);
            else
                im.encode_words(p, out, md.get());
        });
    });
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    if (!impl_) return {};
    return impl_->decoding.decode(ids, skip_special);
}

std::string Tokenizer::token_bytes(int32_t id) const {
    if (!has_token(id)) return {};
    return impl_->decoding.decoded[size_t(id)];
}

int32_t Tokenizer::token_id(std::string_view token) const {
    if (!impl_) return -1;
    std::string key(token);
    auto a = impl_->added.by_content.find(key);
    if (a != impl_->added.by_content.end()) return a->second;
    return impl_->model.vocab.get(key);
}

int32_t Tokenizer::size() const { return impl_ ? impl_->decoding.size : 0; }

bool Tokenizer::is_special(int32_t id) const { return has_token(id) && impl_->decoding.special[size_t(id)]; }

bool Tokenizer::has_token(int32_t id) const { return impl_ && impl_->decoding.has_token(id); }

}  // namespace fdl
