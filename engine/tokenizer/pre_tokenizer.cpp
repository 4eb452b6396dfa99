#include "engine/tokenizer/pre_tokenizer.h"

#include <utility>

#include "engine/io/error.h"
#include "engine/tokenizer/utf8.h"

namespace fdl::tok {

namespace {

void regex_split(const PreStep& st, std::string_view s, std::vector<std::string_view>& out, pcre2_match_data* md) {
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

}  // namespace

std::unique_ptr<Regex> compile_regex(const std::string& pattern, bool literal, std::string& error) {
    int err = 0;
    PCRE2_SIZE off = 0;
    // PCRE2_LITERAL does not allow PCRE2_UCP (which only matters for metacharacters anyway).
    uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        error = "bad pre_tokenizer regex (PCRE2: " + std::string(reinterpret_cast<const char*>(msg)) +
                " at offset " + std::to_string(off) + ")";
        return nullptr;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    auto r = std::make_unique<Regex>();
    r->code = code;
    return r;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words,
                         std::deque<std::string>& storage, pcre2_match_data* md) const {
    std::vector<std::string_view> next;
    words.assign(1, text);
    for (const PreStep& st : steps) {
        next.clear();
        for (std::string_view p : words) {
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
        std::swap(words, next);
    }
}

}  // namespace fdl::tok
