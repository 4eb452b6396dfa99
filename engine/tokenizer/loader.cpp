#include "engine/tokenizer/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "engine/io/files.h"
#include "engine/tokenizer/json_access.h"
#include "engine/tokenizer/tokenizer_json_sax.h"
#include "engine/tokenizer/utf8.h"

namespace fdl::tok {

namespace {

// Real files nest a Sequence or two; a hostile one nesting thousands would overflow the stack.
constexpr int kMaxSequenceDepth = 32;

// Reads one tokenizer.json; its members fail with the file's path.
struct TokenizerJsonReader {
    const std::string& path;
    TokenizerTables& tables;

    void load();
    void load_model(const json& m, FastTokenizerJson* fast);
    void add_merge(size_t rank, const std::string& left, const std::string& right);
    void load_normalizer(const json& n, const std::string& where, int depth = 0);
    void load_pre_tokenizer(const json& p, const std::string& where, int depth = 0);
    std::unique_ptr<Regex> compile(const std::string& pattern, bool literal);
    void check_depth(const std::string& where, int depth);
};

void TokenizerJsonReader::load() {
    json j;
    FastTokenizerJson fast;
    bool fast_ok;
    {
        std::string text = read_file(path);
        fast_ok = read_tokenizer_json_fast(text, fast);
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
    const std::vector<PreStep>& steps = tables.pre_tokenizer.steps;
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
            tables.added.add(std::move(t));
        }
    }
}

void TokenizerJsonReader::load_model(const json& m, FastTokenizerJson* fast) {
    BpeModel& model = tables.model;
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
    model.fuse_unk = get_bool(m, "fuse_unk", false, "model.", path);
    model.byte_fallback = get_bool(m, "byte_fallback", false, "model.", path);
    model.ignore_merges = get_bool(m, "ignore_merges", false, "model.", path);

    if (fast && fast->have_vocab) {
        model.set_vocab(std::move(fast->vocab));
    } else {
        const json& v = required(m, "vocab", "model.", path);
        if (!v.is_object()) fail(path, "\"model.vocab\" must be an object (token -> id)");
        std::vector<std::pair<std::string, int32_t>> entries;
        entries.reserve(v.size());
        for (auto it = v.begin(); it != v.end(); ++it)
            entries.emplace_back(it.key(), get_id(it.value(), "\"model.vocab\" entry \"" + it.key() + "\"", path));
        model.set_vocab(std::move(entries));
    }

    if (const json* u = member(m, "unk_token")) {
        std::string unk = get_string(*u, "\"model.unk_token\"", path);
        model.unk_id = model.vocab.get(unk);
    }

    if (fast && fast->have_merges) {
        model.merges.reserve(fast->merges.size() * 2);
        for (size_t i = 0; i < fast->merges.size(); ++i)
            add_merge(i, fast->merges[i].first, fast->merges[i].second);
        fast->merges = {};
        return;
    }
    const json& mg = required(m, "merges", "model.", path);
    if (!mg.is_array()) fail(path, "\"model.merges\" must be a list");
    model.merges.reserve(mg.size() * 2);
    for (size_t i = 0; i < mg.size(); ++i) {
        const json& e = mg[i];
        if (e.is_string()) {
            const std::string& s = e.get_ref<const std::string&>();
            size_t sp = s.find(' ');
            if (sp == std::string::npos)
                fail(path, "\"model.merges[" + std::to_string(i) + "]\" is not \"left right\"");
            add_merge(i, s.substr(0, sp), s.substr(sp + 1));
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            add_merge(i, e[0].get_ref<const std::string&>(), e[1].get_ref<const std::string&>());
        } else {
            fail(path, "\"model.merges[" + std::to_string(i) + "]\" must be \"left right\" or [left, right]");
        }
    }
}

void TokenizerJsonReader::add_merge(size_t rank, const std::string& left, const std::string& right) {
    BpeModel& model = tables.model;
    const int32_t l = model.vocab.get(left), r = model.vocab.get(right);
    if (l < 0 || r < 0)
        fail(path, "\"model.merges[" + std::to_string(rank) + "]\" uses a token missing from the vocab");
    std::string joined;
    joined.reserve(left.size() + right.size());
    joined += left;
    joined += right;
    const int32_t j = model.vocab.get(joined);
    if (j < 0)
        fail(path, "\"model.merges[" + std::to_string(rank) + "]\": merged token \"" + joined +
                       "\" is missing from the vocab");
    // Like HF (a HashMap collected in order), a repeated pair keeps its last rank.
    model.merges.set(pair_key(l, r), Merge{int32_t(rank), j});
}

void TokenizerJsonReader::load_normalizer(const json& n, const std::string& where, int depth) {
    std::string t = type_of(n, where, path);
    if (t == "Sequence") {
        check_depth(where, depth);
        const json& list = required(n, "normalizers", where + ".", path);
        if (!list.is_array()) fail(path, "\"" + where + ".normalizers\" must be a list");
        for (size_t i = 0; i < list.size(); ++i)
            if (!list[i].is_null())
                load_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]", depth + 1);
    } else if (!tables.normalizer.add(t)) {
        fail(path, "unsupported normalizer type \"" + t + "\"");
    }
}

void TokenizerJsonReader::load_pre_tokenizer(const json& p, const std::string& where, int depth) {
    PreTokenizer& pre = tables.pre_tokenizer;
    std::string t = type_of(p, where, path);
    if (t == "Sequence") {
        check_depth(where, depth);
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
        std::string behavior =
            get_string(required(p, "behavior", where + ".", path), "\"" + where + ".behavior\"", path);
        if (behavior != "Isolated" && behavior != "Removed")
            fail(path, "unsupported Split behavior \"" + behavior + "\" (Isolated or Removed)");
        if (get_bool(p, "invert", false, where + ".", path)) fail(path, "unsupported: Split with invert");
        pre.regexes.push_back(compile(text, literal));
        PreStep st{PreStep::Split};
        st.re = pre.regexes.back().get();
        st.removed = behavior == "Removed";
        pre.steps.push_back(st);
    } else if (t == "ByteLevel") {
        PreStep st{PreStep::ByteLevel};
        st.add_prefix_space = get_bool(p, "add_prefix_space", false, where + ".", path);
        if (get_bool(p, "use_regex", true, where + ".", path)) {
            pre.regexes.push_back(compile(kGpt2Pattern, false));
            st.re = pre.regexes.back().get();
        }
        pre.steps.push_back(st);
    } else {
        fail(path, "unsupported pre_tokenizer type \"" + t + "\"");
    }
}

std::unique_ptr<Regex> TokenizerJsonReader::compile(const std::string& pattern, bool literal) {
    std::string error;
    std::unique_ptr<Regex> re = compile_regex(pattern, literal, error);
    if (!re) fail(path, error);
    return re;
}

// `where` starts with the name of the component ("normalizer", "pre_tokenizer").
void TokenizerJsonReader::check_depth(const std::string& where, int depth) {
    if (depth >= kMaxSequenceDepth)
        fail(path, "\"" + where.substr(0, where.find('.')) + "\": Sequences nested more than " +
                       std::to_string(kMaxSequenceDepth) + " deep");
}

}  // namespace

void load_tokenizer_json(const std::string& path, TokenizerTables& t) { TokenizerJsonReader{path, t}.load(); }

bool load_side_files(const std::string& dir, TokenizerTables& tables) {
    namespace fs = std::filesystem;
    const fs::path d(dir);
    const BpeModel& model = tables.model;
    AddedVocabulary& added = tables.added;
    bool changed = false;

    // Adds a token listed by a transformers side file unless its content is already known.
    auto add_extra = [&](const std::string& file, AddedToken t) {
        if (added.by_content.count(t.content) || model.vocab.contains(t.content)) return;
        const size_t i = size_t(t.id);
        std::string taken;
        if (i < added.index.size() && added.index[i] >= 0)
            taken = added.tokens[size_t(added.index[i])].content;
        else if (i < model.vocab_r.size() && model.vocab_r[i].data())
            taken = std::string(model.vocab_r[i]);
        else {
            added.add(std::move(t));
            changed = true;
            return;
        }
        fail(file, "token \"" + t.content + "\" has id " + std::to_string(t.id) + ", which is already \"" + taken +
                       "\"");
    };

    std::error_code ec;
    const std::string added_file = (d / "added_tokens.json").string();
    if (fs::exists(added_file, ec)) {
        json j = read_json_file(added_file);
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
        json j = read_json_file(config_file);
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
                if (!e->is_object())
                    fail(config_file, "\"" + where.substr(0, where.size() - 1) + "\" must be an object");
                AddedToken t;
                t.id = id;
                t.content =
                    get_string(required(*e, "content", where, config_file), "\"" + where + "content\"", config_file);
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
    return changed;
}

}  // namespace fdl::tok
