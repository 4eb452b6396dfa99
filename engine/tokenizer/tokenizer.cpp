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
#include "engine/tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "engine/io/error.h"
#include "engine/io/files.h"

namespace fdl {

using json = nlohmann::json;

namespace {

// Largest token id accepted from a file: generous (real vocabularies stay under 300k) but it
// keeps a hostile id from allocating gigabytes.
constexpr int64_t kMaxId = (int64_t(1) << 22) - 1;

// The pre-tokenizer regex HF's ByteLevel uses when use_regex is true (GPT-2's).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Looks at the sequence that starts at s[i] (i < n). Returns its length when it is one valid
// UTF-8 character. Otherwise returns 0 and sets `sub` to the length of its maximal invalid
// subpart (the lead byte plus the continuation bytes that were still acceptable, at least 1)
// and `truncated` when the input ended while the sequence was still acceptable.
size_t utf8_char(const unsigned char* s, size_t n, size_t i, size_t& sub, bool& truncated) {
    const unsigned char b = s[i];
    truncated = false;
    if (b < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        sub = 1;
        return 0;
    }
    size_t k = 1;
    for (; k < len; ++k) {
        if (i + k >= n) {
            truncated = true;
            break;
        }
        const unsigned char c = s[i + k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
    }
    if (k == len) return len;
    sub = k;
    return 0;
}

// Appends to `out` the longest prefix of `in` whose fate is decided: valid characters are
// copied, each maximal invalid subpart becomes one U+FFFD (Unicode "substitution of maximal
// subparts", which is what Rust's String::from_utf8_lossy does). An incomplete but so far
// valid sequence at the very end is held back (not consumed) unless `final` is set. Returns
// the number of bytes consumed.
size_t utf8_lossy_append(std::string_view in, std::string& out, bool final) {
    const auto* s = reinterpret_cast<const unsigned char*>(in.data());
    const size_t n = in.size();
    size_t i = 0, run = 0;  // [run, i) is valid text not yet copied
    while (i < n) {
        size_t sub;
        bool truncated;
        size_t len = utf8_char(s, n, i, sub, truncated);
        if (len) {
            i += len;
            continue;
        }
        out.append(in.data() + run, i - run);
        if (truncated && !final) return i;  // wait for the rest of this character
        out += kReplacement;
        i += sub;
        run = i;
    }
    out.append(in.data() + run, i - run);
    return i;
}

bool is_valid_utf8(std::string_view in) {
    const auto* s = reinterpret_cast<const unsigned char*>(in.data());
    size_t i = 0, sub;
    bool truncated;
    while (i < in.size()) {
        size_t len = utf8_char(s, in.size(), i, sub, truncated);
        if (!len) return false;
        i += len;
    }
    return true;
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 16);
    utf8_lossy_append(s, out, true);
    return out;
}

// Decodes the code point at s[i] (s is valid UTF-8) and advances i.
int32_t next_cp(std::string_view s, size_t& i) {
    utf8proc_int32_t cp = -1;
    auto r = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              utf8proc_ssize_t(s.size() - i), &cp);
    if (r <= 0) {
        ++i;
        return -1;
    }
    i += size_t(r);
    return cp;
}

// The code point that ends at s[end] (exclusive), or -1.
int32_t prev_cp(std::string_view s, size_t end, size_t* start_out = nullptr) {
    if (end == 0) return -1;
    size_t st = end - 1;
    while (st > 0 && (static_cast<unsigned char>(s[st]) & 0xC0) == 0x80 && end - st < 4) --st;
    size_t i = st;
    int32_t cp = next_cp(s, i);
    if (start_out) *start_out = st;
    return cp;
}

void append_cp(std::string& out, int32_t cp) {
    utf8proc_uint8_t buf[4];
    auto n = utf8proc_encode_char(cp, buf);
    out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

// Rust's char::is_whitespace (the White_Space property).
bool is_rust_whitespace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

// Regex \w (letters, marks, decimal digits, connector punctuation such as '_').
bool is_word_char(int32_t c) {
    if (c < 0) return false;
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_PC:
            return true;
        default:
            return false;
    }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 bytes_to_unicode

struct ByteAlphabet {
    std::array<std::string, 256> enc;  // byte -> UTF-8 of its char
    std::array<int16_t, 324> dec;      // code point -> byte, -1 if not in the alphabet
    ByteAlphabet() {
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
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

// HF ByteLevel decoder, one token: its chars mapped back to bytes when all of them belong to
// the byte alphabet, otherwise the token's own UTF-8.
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

// ---------------------------------------------------------------------------------------------
// JSON access that never asserts: every problem is an fdl::Error naming the file.

std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw file_error(path, one_line(problem));
}

json parse_json_file(const std::string& path) { return read_json_file(path); }

const json* member(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

const json& required(const json& obj, const char* key, const std::string& where, const std::string& path) {
    const json* v = member(obj, key);
    if (!v) fail(path, "missing \"" + where + key + "\"");
    return *v;
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where, const std::string& path) {
    const json* v = member(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(path, "\"" + where + key + "\" must be true or false");
    return v->get<bool>();
}

std::string get_string(const json& v, const std::string& what, const std::string& path) {
    if (!v.is_string()) fail(path, what + " must be a string");
    return v.get<std::string>();
}

int32_t get_id(const json& v, const std::string& what, const std::string& path) {
    if (!v.is_number_integer()) fail(path, what + " must be an integer id");
    int64_t id = v.is_number_unsigned() ? int64_t(std::min<uint64_t>(v.get<uint64_t>(), uint64_t(kMaxId) + 1))
                                        : v.get<int64_t>();
    if (id < 0 || id > kMaxId) fail(path, what + " = " + v.dump() + " is out of range");
    return int32_t(id);
}

std::string type_of(const json& obj, const std::string& where, const std::string& path) {
    if (!obj.is_object()) fail(path, "\"" + where + "\" must be an object");
    return get_string(required(obj, "type", where + ".", path), "\"" + where + ".type\"", path);
}

// ---------------------------------------------------------------------------------------------
// PCRE2 wrapper

struct Regex {
    pcre2_code* code = nullptr;
    Regex() = default;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    ~Regex() {
        if (code) pcre2_code_free(code);
    }
};

std::unique_ptr<Regex> compile_regex(const std::string& pattern, bool literal, const std::string& path) {
    int err = 0;
    PCRE2_SIZE off = 0;
    // PCRE2_LITERAL does not allow PCRE2_UCP (which only matters for metacharacters anyway).
    uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(path, "bad pre_tokenizer regex (PCRE2: " + std::string(reinterpret_cast<const char*>(msg)) +
                       " at offset " + std::to_string(off) + ")");
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    auto r = std::make_unique<Regex>();
    r->code = code;
    return r;
}

// ---------------------------------------------------------------------------------------------

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
        size_t added;  // index into Impl::added
    };
    std::vector<Pat> pats;
    std::array<std::vector<uint32_t>, 256> by_first;  // pattern indices, longest first

    void build(std::vector<Pat> p) {
        pats = std::move(p);
        for (auto& v : by_first) v.clear();
        for (uint32_t i = 0; i < pats.size(); ++i)
            if (!pats[i].text.empty()) by_first[static_cast<unsigned char>(pats[i].text[0])].push_back(i);
        for (auto& v : by_first)
            std::stable_sort(v.begin(), v.end(),
                             [&](uint32_t a, uint32_t b) { return pats[a].text.size() > pats[b].text.size(); });
    }
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

struct PreStep {
    enum Kind { Split, ByteLevel } kind;
    const Regex* re = nullptr;  // Split: its pattern; ByteLevel: GPT-2 pattern or null
    bool removed = false;       // Split behavior "Removed" (else "Isolated")
    bool add_prefix_space = false;
};

struct Merge {
    int32_t rank;
    int32_t new_id;
};

inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Open-addressing map from token strings to ids. The keys live in one arena, so loading 151k
// tokens costs no allocation per token and a lookup touches one slot plus the key's bytes.
class TokenMap {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    int32_t get(std::string_view k) const {
        if (slots_.empty()) return -1;
        const uint64_t h = hash(k);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            const Slot& sl = slots_[i];
            if (sl.id < 0) return -1;
            if (sl.tag == tag && sl.len == k.size() && std::memcmp(arena_.data() + sl.off, k.data(), k.size()) == 0)
                return sl.id;
        }
    }
    bool contains(std::string_view k) const { return get(k) >= 0; }
    // Inserts or replaces. Invalidates views returned by for_each.
    void set(std::string_view k, int32_t id) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        const uint64_t h = hash(k);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            Slot& sl = slots_[i];
            if (sl.id < 0) {
                sl = Slot{uint32_t(arena_.size()), uint32_t(k.size()), id, tag};
                arena_.append(k.data(), k.size());
                ++count_;
                return;
            }
            if (sl.tag == tag && sl.len == k.size() && std::memcmp(arena_.data() + sl.off, k.data(), k.size()) == 0) {
                sl.id = id;
                return;
            }
        }
    }
    size_t size() const { return count_; }
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& sl : slots_)
            if (sl.id >= 0) f(std::string_view(arena_.data() + sl.off, sl.len), sl.id);
    }

private:
    struct Slot {
        uint32_t off, len;
        int32_t id;  // -1: empty
        uint32_t tag;
    };
    static uint64_t hash(std::string_view k) { return std::hash<std::string_view>{}(k); }
    void rehash(size_t cap) {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(cap, Slot{0, 0, -1, 0});
        mask_ = cap - 1;
        for (const Slot& sl : old) {
            if (sl.id < 0) continue;
            const uint64_t h = hash(std::string_view(arena_.data() + sl.off, sl.len));
            size_t i = size_t(h) & mask_;
            while (slots_[i].id >= 0) i = (i + 1) & mask_;
            slots_[i] = sl;
        }
    }
    std::string arena_;
    std::vector<Slot> slots_;
    size_t mask_ = 0, count_ = 0;
};

// Open-addressing map from a pair of ids to its merge.
class MergeMap {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    const Merge* find(uint64_t key) const {
        if (slots_.empty()) return nullptr;
        for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
            const Slot& sl = slots_[i];
            if (sl.key == key) return &sl.m;
            if (sl.key == kEmpty) return nullptr;
        }
    }
    void set(uint64_t key, Merge m) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
            Slot& sl = slots_[i];
            if (sl.key == key) {
                sl.m = m;
                return;
            }
            if (sl.key == kEmpty) {
                sl = Slot{key, m};
                ++count_;
                return;
            }
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are < 2^22, so no pair is this
    struct Slot {
        uint64_t key;
        Merge m;
    };
    static size_t mix(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        return size_t(k);
    }
    void rehash(size_t cap) {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(cap, Slot{kEmpty, Merge{0, 0}});
        mask_ = cap - 1;
        for (const Slot& sl : old) {
            if (sl.key == kEmpty) continue;
            size_t i = mix(sl.key) & mask_;
            while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
            slots_[i] = sl;
        }
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0, count_ = 0;
};

// Reads a tokenizer.json quickly: model.vocab and model.merges (nearly all of a 6 MB file) go
// straight into flat lists through nlohmann's SAX interface, everything else becomes a small
// DOM. Whatever is unexpected inside those two (a wrong type, a malformed merge) or a syntax
// error makes it give up; the caller then reads the file as a plain DOM, whose checks give
// the precise error message.
struct FastTokenizerJson {
    json root;
    std::vector<json*> stack;
    std::string cur_key;         // pending key of the innermost DOM object
    json* model = nullptr;       // root["model"] while it is being read
    enum Mode { Dom, Vocab, Merges, MergePair } mode = Dom;
    bool have_vocab = false, have_merges = false;
    std::vector<std::pair<std::string, int32_t>> vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    std::string vocab_key;
    int pair_n = 0;

    json* add(json v) {
        if (stack.empty()) {
            root = std::move(v);
            return &root;
        }
        json* top = stack.back();
        if (top->is_object()) {
            json& slot = (*top)[cur_key];
            slot = std::move(v);
            return &slot;
        }
        top->push_back(std::move(v));
        return &top->back();
    }
    bool value(json v) {
        if (mode != Dom) return false;
        add(std::move(v));
        return true;
    }
    bool id_value(int64_t v) {
        if (mode == Vocab) {
            if (v < 0 || v > kMaxId) return false;
            vocab.emplace_back(std::move(vocab_key), int32_t(v));
            return true;
        }
        return value(json(v));
    }
    bool null() { return value(json(nullptr)); }
    bool boolean(bool v) { return value(json(v)); }
    bool number_integer(json::number_integer_t v) { return id_value(v); }
    bool number_unsigned(json::number_unsigned_t v) {
        if (mode == Vocab) return v <= uint64_t(kMaxId) && id_value(int64_t(v));
        return value(json(v));
    }
    bool number_float(json::number_float_t v, const std::string&) { return value(json(v)); }
    bool string(std::string& v) {
        if (mode == Merges) {
            size_t sp = v.find(' ');
            if (sp == std::string::npos) return false;
            merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
            return true;
        }
        if (mode == MergePair) {
            if (pair_n == 0) merges.emplace_back(std::move(v), std::string());
            else if (pair_n == 1) merges.back().second = std::move(v);
            else return false;
            ++pair_n;
            return true;
        }
        return value(json(std::move(v)));
    }
    bool binary(json::binary_t&) { return false; }
    bool start_object(size_t) {
        if (mode != Dom) return false;
        if (model && stack.size() == 2 && stack.back() == model && cur_key == "vocab") {
            if (have_vocab) return false;  // a second one: leave it to the DOM reader
            mode = Vocab;
            return true;
        }
        const bool is_model = stack.size() == 1 && root.is_object() && cur_key == "model";
        json* p = add(json::object());
        if (is_model) model = p;
        stack.push_back(p);
        return true;
    }
    bool key(std::string& k) {
        if (mode == Vocab) vocab_key = std::move(k);
        else cur_key = std::move(k);
        return true;
    }
    bool end_object() {
        if (mode == Vocab) {
            mode = Dom;
            have_vocab = true;
            return true;
        }
        if (stack.empty() || mode != Dom) return false;
        if (stack.back() == model) model = nullptr;
        stack.pop_back();
        return true;
    }
    bool start_array(size_t) {
        if (mode == Merges) {
            mode = MergePair;
            pair_n = 0;
            return true;
        }
        if (mode != Dom) return false;
        if (model && stack.size() == 2 && stack.back() == model && cur_key == "merges") {
            if (have_merges) return false;
            mode = Merges;
            return true;
        }
        stack.push_back(add(json::array()));
        return true;
    }
    bool end_array() {
        if (mode == MergePair) {
            mode = Merges;
            return pair_n == 2;
        }
        if (mode == Merges) {
            mode = Dom;
            have_merges = true;
            return true;
        }
        if (stack.empty() || mode != Dom) return false;
        stack.pop_back();
        return true;
    }
    bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
    std::string path;

    // Model (BPE).
    TokenMap vocab;                           // frozen once loaded
    std::vector<std::string_view> vocab_r;    // id -> its key in `vocab`; data() null when none
    MergeMap merges;
    std::array<int32_t, 256> byte_id{};  // byte -> id of its byte-level char, -1 if missing
    int32_t unk_id = -1;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;

    // Added tokens.
    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> added_by_content;  // content -> id
    std::vector<int32_t> added_index;                             // id -> index into added, -1
    LiteralMatcher raw_matcher, norm_matcher;

    // Per id: what decode emits, whether special.
    std::vector<std::string> decoded;
    std::vector<uint8_t> has, special;
    int32_t size = 0;

    // Normalizer: utf8proc option sets applied in order (empty: none).
    std::vector<int> normalizers;
    // Pre-tokenizer.
    std::vector<std::unique_ptr<Regex>> regexes;
    std::vector<PreStep> steps;

    // Cache of BPE results per word (bytes). Shared by threads.
    mutable std::mutex cache_mu;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
    static constexpr size_t kCacheMax = 1 << 17;
    static constexpr size_t kCacheWordMax = 128;

    // ---- loading
    void load(const std::string& file);
    void load_model(const json& m, FastTokenizerJson* fast);
    void set_vocab(std::vector<std::pair<std::string, int32_t>> entries);
    void add_merge(size_t rank, const std::string& left, const std::string& right);
    void load_normalizer(const json& n, const std::string& where, int depth = 0);
    void load_pre_tokenizer(const json& p, const std::string& where, int depth = 0);
    void add_token(AddedToken t);
    void finish();

    // ---- encoding
    std::string normalize(std::string_view s) const;
    template <class F>
    void split_added(std::string_view s, const LiteralMatcher& m, bool parse_special, F&& emit) const;
    void encode_words(std::string_view normalized, std::vector<int32_t>& out, pcre2_match_data* md) const;
    void regex_split(const PreStep& st, std::string_view s, std::vector<std::string_view>& out,
                     pcre2_match_data* md) const;
    void bpe(std::string_view word, std::vector<int32_t>& out) const;
    void bpe_uncached(std::string_view word, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::load(const std::string& file) {
    path = file;
    json j;
    FastTokenizerJson fast;
    bool fast_ok;
    {
        std::string text = read_file(file);
        fast_ok = json::sax_parse(text, &fast);
        if (fast_ok) {
            j = std::move(fast.root);
        } else {
            j = parse_json(text, path);
        }
    }
    if (!j.is_object()) fail(path, "not a tokenizer.json (top level is not an object)");

    load_model(required(j, "model", "", path), fast_ok ? &fast : nullptr);

    if (const json* n = member(j, "normalizer")) load_normalizer(*n, "normalizer");

    const json* p = member(j, "pre_tokenizer");
    if (!p) fail(path, "unsupported: no pre_tokenizer (only byte-level BPE is supported)");
    load_pre_tokenizer(*p, "pre_tokenizer");
    if (steps.empty() || steps.back().kind != PreStep::ByteLevel)
        fail(path, "unsupported pre_tokenizer: it must end with ByteLevel");
    for (size_t i = 0; i + 1 < steps.size(); ++i)
        if (steps[i].kind == PreStep::ByteLevel) fail(path, "unsupported pre_tokenizer: ByteLevel before other steps");

    if (const json* d = member(j, "decoder")) {
        std::string t = type_of(*d, "decoder", path);
        if (t != "ByteLevel") fail(path, "unsupported decoder type \"" + t + "\" (only ByteLevel)");
    }

    if (const json* a = member(j, "added_tokens")) {
        if (!a->is_array()) fail(path, "\"added_tokens\" must be a list");
        for (size_t i = 0; i < a->size(); ++i) {
            const json& e = (*a)[i];
            const std::string where = "added_tokens[" + std::to_string(i) + "].";
            if (!e.is_object()) fail(path, "\"added_tokens[" + std::to_string(i) + "]\" must be an object");
            AddedToken t;
            t.id = get_id(required(e, "id", where, path), "\"" + where + "id\"", path);
            t.content = get_string(required(e, "content", where, path), "\"" + where + "content\"", path);
            if (t.content.empty()) fail(path, "\"" + where + "content\" is empty");
            if (!is_valid_utf8(t.content)) t.content = utf8_lossy(t.content);
            t.special = get_bool(e, "special", false, where, path);
            t.lstrip = get_bool(e, "lstrip", false, where, path);
            t.rstrip = get_bool(e, "rstrip", false, where, path);
            t.single_word = get_bool(e, "single_word", false, where, path);
            t.normalized = get_bool(e, "normalized", !t.special, where, path);
            add_token(std::move(t));
        }
    }
}

void Tokenizer::Impl::load_model(const json& m, FastTokenizerJson* fast) {
    if (!m.is_object()) fail(path, "\"model\" must be an object");
    if (const json* t = member(m, "type")) {
        std::string type = get_string(*t, "\"model.type\"", path);
        if (type != "BPE") fail(path, "unsupported model type \"" + type + "\" (only BPE)");
    } else if (!member(m, "merges")) {
        fail(path, "unsupported model (no \"model.type\" and no merges: only BPE)");
    }
    if (const json* d = member(m, "dropout")) {
        if (!d->is_number()) fail(path, "\"model.dropout\" must be a number");
        if (d->get<double>() > 0.0) fail(path, "unsupported: BPE dropout");
    }
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (const json* v = member(m, k)) {
            if (!get_string(*v, std::string("\"model.") + k + "\"", path).empty())
                fail(path, std::string("unsupported: non-empty \"model.") + k + "\"");
        }
    }
    fuse_unk = get_bool(m, "fuse_unk", false, "model.", path);
    byte_fallback = get_bool(m, "byte_fallback", false, "model.", path);
    ignore_merges = get_bool(m, "ignore_merges", false, "model.", path);

    if (fast && fast->have_vocab) {
        set_vocab(std::move(fast->vocab));
    } else {
        const json& v = required(m, "vocab", "model.", path);
        if (!v.is_object()) fail(path, "\"model.vocab\" must be an object (token -> id)");
        std::vector<std::pair<std::string, int32_t>> entries;
        entries.reserve(v.size());
        for (auto it = v.begin(); it != v.end(); ++it)
            entries.emplace_back(it.key(), get_id(it.value(), "\"model.vocab\" entry \"" + it.key() + "\"", path));
        set_vocab(std::move(entries));
    }

    if (const json* u = member(m, "unk_token")) {
        std::string unk = get_string(*u, "\"model.unk_token\"", path);
        unk_id = vocab.get(unk);
    }

    const auto& a = alphabet();
    for (int b = 0; b < 256; ++b) {
        byte_id[size_t(b)] = vocab.get(a.enc[size_t(b)]);
    }

    if (fast && fast->have_merges) {
        merges.reserve(fast->merges.size() * 2);
        for (size_t i = 0; i < fast->merges.size(); ++i)
            add_merge(i, fast->merges[i].first, fast->merges[i].second);
        fast->merges = {};
        return;
    }
    const json& mg = required(m, "merges", "model.", path);
    if (!mg.is_array()) fail(path, "\"model.merges\" must be a list");
    merges.reserve(mg.size() * 2);
    for (size_t i = 0; i < mg.size(); ++i) {
        const json& e = mg[i];
        if (e.is_string()) {
            const std::string& s = e.get_ref<const std::string&>();
            size_t sp = s.find(' ');
            if (sp == std::string::npos) fail(path, "\"model.merges[" + std::to_string(i) + "]\" is not \"left right\"");
            add_merge(i, s.substr(0, sp), s.substr(sp + 1));
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            add_merge(i, e[0].get_ref<const std::string&>(), e[1].get_ref<const std::string&>());
        } else {
            fail(path, "\"model.merges[" + std::to_string(i) + "]\" must be \"left right\" or [left, right]");
        }
    }
}

void Tokenizer::Impl::set_vocab(std::vector<std::pair<std::string, int32_t>> entries) {
    vocab.reserve(entries.size());
    int32_t max_id = -1;
    for (auto& [k, id] : entries) {
        max_id = std::max(max_id, id);
        vocab.set(k, id);  // a repeated key keeps its last id, as in a DOM
    }
    entries = {};
    vocab_r.assign(size_t(max_id + 1), std::string_view());
    // When two strings share an id, HF's reverse map keeps one of them; so does this.
    vocab.for_each([&](std::string_view k, int32_t id) {
        if (!vocab_r[size_t(id)].data()) vocab_r[size_t(id)] = k;
    });
}

void Tokenizer::Impl::add_merge(size_t rank, const std::string& left, const std::string& right) {
    const int32_t l = vocab.get(left), r = vocab.get(right);
    if (l < 0 || r < 0)
        fail(path, "\"model.merges[" + std::to_string(rank) + "]\" uses a token missing from the vocab");
    std::string joined;
    joined.reserve(left.size() + right.size());
    joined += left;
    joined += right;
    const int32_t j = vocab.get(joined);
    if (j < 0)
        fail(path, "\"model.merges[" + std::to_string(rank) + "]\": merged token \"" + joined +
                       "\" is missing from the vocab");
    // Like HF (a HashMap collected in order), a repeated pair keeps its last rank.
    merges.set(pair_key(l, r), Merge{int32_t(rank), j});
}

// Real files nest a Sequence or two; a hostile one nesting thousands would overflow the stack.
constexpr int kMaxSequenceDepth = 32;

void Tokenizer::Impl::load_normalizer(const json& n, const std::string& where, int depth) {
    std::string t = type_of(n, where, path);
    if (t == "Sequence") {
        if (depth >= kMaxSequenceDepth) fail(path, "\"" + where.substr(0, where.find('.')) + "\": Sequences nested more than " + std::to_string(kMaxSequenceDepth) + " deep");
        const json& list = required(n, "normalizers", where + ".", path);
        if (!list.is_array()) fail(path, "\"" + where + ".normalizers\" must be a list");
        for (size_t i = 0; i < list.size(); ++i)
            if (!list[i].is_null()) load_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]", depth + 1);
    } else if (t == "NFC") {
        normalizers.push_back(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    } else if (t == "NFD") {
        normalizers.push_back(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    } else if (t == "NFKC") {
        normalizers.push_back(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    } else if (t == "NFKD") {
        normalizers.push_back(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    } else {
        fail(path, "unsupported normalizer type \"" + t + "\"");
    }
}

void Tokenizer::Impl::load_pre_tokenizer(const json& p, const std::string& where, int depth) {
    std::string t = type_of(p, where, path);
    if (t == "Sequence") {
        if (depth >= kMaxSequenceDepth) fail(path, "\"" + where.substr(0, where.find('.')) + "\": Sequences nested more than " + std::to_string(kMaxSequenceDepth) + " deep");
        const json& list = required(p, "pretokenizers", where + ".", path);
        if (!list.is_array()) fail(path, "\"" + where + ".pretokenizers\" must be a list");
        for (size_t i = 0; i < list.size(); ++i)
            load_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", depth + 1);
    } else if (t == "Split") {
        const json& pat = required(p, "pattern", where + ".", path);
        bool literal;
        std::string text;
        if (const json* r = member(pat, "Regex")) {
            literal = false;
            text = get_string(*r, "\"" + where + ".pattern.Regex\"", path);
        } else if (const json* s = member(pat, "String")) {
            literal = true;
            text = get_string(*s, "\"" + where + ".pattern.String\"", path);
        } else {
            fail(path, "\"" + where + ".pattern\" must be {\"Regex\": ...} or {\"String\": ...}");
        }
        std::string behavior = get_string(required(p, "behavior", where + ".", path), "\"" + where + ".behavior\"", path);
        if (behavior != "Isolated" && behavior != "Removed")
            fail(path, "unsupported Split behavior \"" + behavior + "\" (Isolated or Removed)");
        if (get_bool(p, "invert", false, where + ".", path)) fail(path, "unsupported: Split with invert");
        regexes.push_back(compile_regex(text, literal, path));
        PreStep st{PreStep::Split};
        st.re = regexes.back().get();
        st.removed = behavior == "Removed";
        steps.push_back(st);
    } else if (t == "ByteLevel") {
        PreStep st{PreStep::ByteLevel};
        st.add_prefix_space = get_bool(p, "add_prefix_space", false, where + ".", path);
        if (get_bool(p, "use_regex", true, where + ".", path)) {
            regexes.push_back(compile_regex(kGpt2Pattern, false, path));
            st.re = regexes.back().get();
        }
        steps.push_back(st);
    } else {
        fail(path, "unsupported pre_tokenizer type \"" + t + "\"");
    }
}

void Tokenizer::Impl::add_token(AddedToken t) {
    if (t.id >= int32_t(added_index.size())) added_index.resize(size_t(t.id) + 1, -1);
    int32_t prev = added_index[size_t(t.id)];
    if (prev >= 0) {
        // Same id listed again: the later entry replaces the earlier one.
        auto it = added_by_content.find(added[size_t(prev)].content);
        if (it != added_by_content.end() && it->second == t.id) added_by_content.erase(it);
        added_by_content[t.content] = t.id;
        added[size_t(prev)] = std::move(t);
    } else {
        added_by_content[t.content] = t.id;
        added_index[size_t(t.id)] = int32_t(added.size());
        added.push_back(std::move(t));
    }
}

// Builds the per-id tables and the added-token matchers. Called after every change.
void Tokenizer::Impl::finish() {
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
            const AddedToken& t = added[size_t(added_index[i])];
            has[i] = 1;
            special[i] = t.special;
            decoded[i] = bytelevel_decode_token(t.content);
        } else if (i < vocab_r.size() && vocab_r[i].data()) {
            has[i] = 1;
            decoded[i] = bytelevel_decode_token(vocab_r[i]);
        }
    }
    // HF skips, when asked, every token whose string is a special token's content.
    for (const auto& t : added) {
        if (!t.special) continue;
        const int32_t v = vocab.get(t.content);
        if (v >= 0 && size_t(v) < special.size() && (size_t(v) >= added_index.size() || added_index[size_t(v)] < 0))
            special[size_t(v)] = 1;
    }

    std::vector<LiteralMatcher::Pat> raw, norm;
    for (size_t i = 0; i < added.size(); ++i) {
        const AddedToken& t = added[i];
        if (added_by_content.count(t.content) == 0 || added_by_content[t.content] != t.id) continue;
        if (t.normalized) {
            std::string c = normalize(t.content);
            if (!c.empty()) norm.push_back({std::move(c), i});
        } else {
            raw.push_back({t.content, i});
        }
    }
    raw_matcher.build(std::move(raw));
    norm_matcher.build(std::move(norm));
    std::lock_guard<std::mutex> lk(cache_mu);
    cache.clear();
}

std::string Tokenizer::Impl::normalize(std::string_view s) const {
    if (normalizers.empty()) return std::string(s);
    bool ascii = true;
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) {
            ascii = false;
            break;
        }
    if (ascii) return std::string(s);  // every normal form of ASCII is itself
    std::string cur(s);
    for (int opts : normalizers) {
        utf8proc_uint8_t* dst = nullptr;
        utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(cur.data()),
                                          utf8proc_ssize_t(cur.size()), &dst, utf8proc_option_t(opts));
        if (n >= 0 && dst) cur.assign(reinterpret_cast<const char*>(dst), size_t(n));
        std::free(dst);
    }
    return cur;
}

// HF AddedVocabulary::find_matches: cuts `s` into (text, -1) and (token, id) pieces.
template <class F>
void Tokenizer::Impl::split_added(std::string_view s, const LiteralMatcher& m, bool parse_special, F&& emit) const {
    if (m.empty()) {
        if (!s.empty()) emit(s, -1);
        return;
    }
    size_t start_offset = 0, from = 0, mstart, mlen, ai;
    while (m.find(s, from, mstart, mlen, ai)) {
        from = mstart + mlen;
        const AddedToken& t = added[ai];
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

void Tokenizer::Impl::regex_split(const PreStep& st, std::string_view s, std::vector<std::string_view>& out,
                                  pcre2_match_data* md) const {
    const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    size_t pos = 0, last = 0;
    while (pos <= s.size()) {
        int rc = pcre2_match(st.re->code, subj, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // very long runs: the interpreter keeps its stack on the heap
            rc = pcre2_match(st.re->code, subj, s.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error("tokenizer: regex match failed: " + std::string(reinterpret_cast<const char*>(msg)));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {  // empty match: nothing to cut, move on by one character
            if (ms >= s.size()) break;
            size_t k = ms;
            next_cp(s, k);
            pos = k;
            continue;
        }
        if (ms > last) out.push_back(s.substr(last, ms - last));
        if (!st.removed) out.push_back(s.substr(ms, me - ms));
        last = pos = me;
    }
    if (last < s.size()) out.push_back(s.substr(last));
}

void Tokenizer::Impl::encode_words(std::string_view text, std::vector<int32_t>& out, pcre2_match_data* md) const {
    if (text.empty()) return;  // HF drops empty splits
    std::deque<std::string> storage;  // pieces that got a prefix space
    std::vector<std::string_view> cur{text}, next;
    for (const PreStep& st : steps) {
        next.clear();
        for (std::string_view p : cur) {
            if (st.kind == PreStep::ByteLevel && st.add_prefix_space && (p.empty() || p[0] != ' ')) {
                storage.push_back(" ");
                storage.back() += p;
                p = storage.back();
            }
            if (st.re)
                regex_split(st, p, next, md);
            else if (!p.empty())
                next.push_back(p);
        }
        std::swap(cur, next);
    }
    for (std::string_view w : cur) bpe(w, out);
}

void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (word.size() == 1 && byte_id[static_cast<unsigned char>(word[0])] >= 0) {
        out.push_back(byte_id[static_cast<unsigned char>(word[0])]);
        return;
    }
    if (word.size() > kCacheWordMax) {
        bpe_uncached(word, out);
        return;
    }
    std::string key(word);
    {
        std::lock_guard<std::mutex> lk(cache_mu);
        auto it = cache.find(key);
        if (it != cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    size_t before = out.size();
    bpe_uncached(word, out);
    std::vector<int32_t> ids(out.begin() + ptrdiff_t(before), out.end());
    std::lock_guard<std::mutex> lk(cache_mu);
    if (cache.size() >= kCacheMax) cache.clear();
    cache.emplace(std::move(key), std::move(ids));
}

// HF BPE::merge_word + Word::merge_all, on the word's bytes (one byte-level char per byte).
void Tokenizer::Impl::bpe_uncached(std::string_view word, std::vector<int32_t>& out) const {
    const auto& a = alphabet();
    if (ignore_merges) {
        std::string bl;
        for (char c : word) bl += a.enc[static_cast<unsigned char>(c)];
        const int32_t id = vocab.get(bl);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    struct Sym {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    std::vector<Sym> syms;
    syms.reserve(word.size());
    auto add = [&](int32_t id) {
        int32_t n = int32_t(syms.size());
        syms.push_back({id, n - 1, -1, true});
        if (n > 0) syms[size_t(n - 1)].next = n;
    };
    bool pending_unk = false;
    for (char c : word) {
        const unsigned char b = static_cast<unsigned char>(c);
        if (byte_id[b] >= 0) {
            if (pending_unk) add(unk_id), pending_unk = false;
            add(byte_id[b]);
            continue;
        }
        if (byte_fallback) {
            bool all = true;
            std::vector<int32_t> fb;
            for (char x : a.enc[b]) {
                char name[8];
                std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(x));
                const int32_t id = vocab.get(name);
                if (id < 0) {
                    all = false;
                    break;
                }
                fb.push_back(id);
            }
            if (all) {
                if (pending_unk) add(unk_id), pending_unk = false;
                for (int32_t id : fb) add(id);
                continue;
            }
        }
        if (unk_id >= 0) {
            if (pending_unk && !fuse_unk) add(unk_id);
            pending_unk = true;
        }
    }
    if (pending_unk) add(unk_id);
    if (syms.empty()) return;

    struct Cand {
        int32_t rank, pos, new_id;
    };
    auto lower = [](const Cand& x, const Cand& y) {  // true when x pops after y
        return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(lower)> queue(lower);
    auto lookup = [&](int32_t l, int32_t r) -> const Merge* {
        return merges.find(pair_key(l, r));
    };
    for (size_t i = 0; i + 1 < syms.size(); ++i)
        if (const Merge* m = lookup(syms[i].id, syms[i + 1].id)) queue.push({m->rank, int32_t(i), m->new_id});

    while (!queue.empty()) {
        Cand top = queue.top();
        queue.pop();
        Sym& cur = syms[size_t(top.pos)];
        if (!cur.alive || cur.next < 0) continue;
        const int32_t next_pos = cur.next;
        const Sym right = syms[size_t(next_pos)];
        const Merge* m = lookup(cur.id, right.id);
        if (!m || m->new_id != top.new_id) continue;  // stale entry
        cur.id = top.new_id;
        cur.next = right.next;
        syms[size_t(next_pos)].alive = false;
        if (right.next >= 0) syms[size_t(right.next)].prev = top.pos;
        if (cur.prev >= 0)
            if (const Merge* pm = lookup(syms[size_t(cur.prev)].id, cur.id))
                queue.push({pm->rank, cur.prev, pm->new_id});
        if (cur.next >= 0)
            if (const Merge* nm = lookup(cur.id, syms[size_t(cur.next)].id))
                queue.push({nm->rank, top.pos, nm->new_id});
    }
    for (const Sym& s : syms)
        if (s.alive) out.push_back(s.id);
}

// ---------------------------------------------------------------------------------------------
// Public API

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
    impl->load(tokenizer_json);
    impl->finish();
    Tokenizer t;
    t.impl_ = impl.release();
    return t;
}

Tokenizer Tokenizer::from_model_dir(const std::string& dir) {
    namespace fs = std::filesystem;
    const fs::path d(dir);
    Tokenizer tok = from_file((d / "tokenizer.json").string());
    Impl& im = *tok.impl_;
    bool changed = false;

    // Adds a token listed by a transformers side file unless its content is already known.
    auto add_extra = [&](const std::string& file, AddedToken t) {
        if (im.added_by_content.count(t.content) || im.vocab.contains(t.content)) return;
        const size_t i = size_t(t.id);
        std::string taken;
        if (i < im.added_index.size() && im.added_index[i] >= 0)
            taken = im.added[size_t(im.added_index[i])].content;
        else if (i < im.vocab_r.size() && im.vocab_r[i].data())
            taken = std::string(im.vocab_r[i]);
        else {
            im.add_token(std::move(t));
            changed = true;
            return;
        }
        fail(file, "token \"" + t.content + "\" has id " + std::to_string(t.id) + ", which is already \"" + taken +
                       "\"");
    };

    std::error_code ec;
    const std::string added_file = (d / "added_tokens.json").string();
    if (fs::exists(added_file, ec)) {
        json j = parse_json_file(added_file);
        if (!j.is_object()) fail(added_file, "must be an object {\"token\": id}");
        for (auto it = j.begin(); it != j.end(); ++it) {
            AddedToken t;
            t.content = it.key();
            if (t.content.empty()) fail(added_file, "empty token");
            t.id = get_id(it.value(), "\"" + it.key() + "\"", added_file);
            t.special = true;  // transformers lists special tokens here; no flags are given
            t.normalized = false;
            add_extra(added_file, std::move(t));
        }
    }

    const std::string config_file = (d / "tokenizer_config.json").string();
    if (fs::exists(config_file, ec)) {
        json j = parse_json_file(config_file);
        if (!j.is_object()) fail(config_file, "top level is not an object");
        if (const json* dec = member(j, "added_tokens_decoder")) {
            if (!dec->is_object()) fail(config_file, "\"added_tokens_decoder\" must be an object");
            // Sorted by id so that a bad file fails the same way whatever the key order.
            std::vector<std::pair<int32_t, const json*>> entries;
            for (auto it = dec->begin(); it != dec->end(); ++it) {
                const std::string& k = it.key();
                char* end = nullptr;
                errno = 0;
                long long id = k.empty() ? -1 : std::strtoll(k.c_str(), &end, 10);
                if (k.empty() || errno || *end || id < 0 || id > kMaxId)
                    fail(config_file, "\"added_tokens_decoder\" key \"" + k + "\" is not a token id");
                entries.emplace_back(int32_t(id), &it.value());
            }
            std::sort(entries.begin(), entries.end(),
                      [](const auto& x, const auto& y) { return x.first < y.first; });
            for (auto& [id, e] : entries) {
                const std::string where = "added_tokens_decoder." + std::to_string(id) + ".";
                if (!e->is_object()) fail(config_file, "\"" + where.substr(0, where.size() - 1) + "\" must be an object");
                AddedToken t;
                t.id = id;
                t.content = get_string(required(*e, "content", where, config_file), "\"" + where + "content\"", config_file);
                if (t.content.empty()) fail(config_file, "\"" + where + "content\" is empty");
                if (!is_valid_utf8(t.content)) t.content = utf8_lossy(t.content);
                t.special = get_bool(*e, "special", true, where, config_file);
                t.lstrip = get_bool(*e, "lstrip", false, where, config_file);
                t.rstrip = get_bool(*e, "rstrip", false, where, config_file);
                t.single_word = get_bool(*e, "single_word", false, where, config_file);
                t.normalized = get_bool(*e, "normalized", !t.special, where, config_file);
                add_extra(config_file, std::move(t));
            }
        }
    }
    if (changed) im.finish();
    return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
    std::vector<int32_t> out;
    if (!impl_ || text.empty()) return out;
    const Impl& im = *impl_;
    // Invalid UTF-8 (which HF never receives: Python strings are always valid) is first made
    // valid the way Rust's from_utf8_lossy would: one U+FFFD per maximal invalid subpart.
    std::string fixed;
    if (!is_valid_utf8(text)) {
        fixed = utf8_lossy(text);
        text = fixed;
    }
    out.reserve(text.size() / 3 + 4);
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create(4, nullptr), pcre2_match_data_free);
    if (!md) throw Error("tokenizer: out of memory");
    im.split_added(text, im.raw_matcher, parse_special, [&](std::string_view piece, int32_t id) {
        if (id >= 0) {
            out.push_back(id);
            return;
        }
        std::string norm = im.normalize(piece);
        im.split_added(norm, im.norm_matcher, parse_special, [&](std::string_view p, int32_t id2) {
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
    const Impl& im = *impl_;
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || id >= im.size || !im.has[size_t(id)]) continue;
        if (skip_special && im.special[size_t(id)]) continue;
        bytes += im.decoded[size_t(id)];
    }
    if (is_valid_utf8(bytes)) return bytes;
    return utf8_lossy(bytes);
}

std::string Tokenizer::token_bytes(int32_t id) const {
    if (!has_token(id)) return {};
    return impl_->decoded[size_t(id)];
}

int32_t Tokenizer::token_id(std::string_view token) const {
    if (!impl_) return -1;
    std::string key(token);
    auto a = impl_->added_by_content.find(key);
    if (a != impl_->added_by_content.end()) return a->second;
    return impl_->vocab.get(key);
}

int32_t Tokenizer::size() const { return impl_ ? impl_->size : 0; }

bool Tokenizer::is_special(int32_t id) const { return has_token(id) && impl_->special[size_t(id)]; }

bool Tokenizer::has_token(int32_t id) const {
    return impl_ && id >= 0 && id < impl_->size && impl_->has[size_t(id)];
}

// ---------------------------------------------------------------------------------------------

std::string StreamDetokenizer::push(int32_t id) {
    if (!tok_.has_token(id)) return {};
    if (skip_special_ && tok_.is_special(id)) return {};
    pending_ += tok_.token_bytes(id);
    std::string out;
    size_t used = utf8_lossy_append(pending_, out, false);
    pending_.erase(0, used);
    return out;
}

std::string StreamDetokenizer::flush() {
    std::string out;
    utf8_lossy_append(pending_, out, true);
    pending_.clear();
    return out;
}

}  // namespace fdl
