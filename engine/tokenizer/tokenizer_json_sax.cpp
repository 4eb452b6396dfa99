#include "engine/tokenizer/tokenizer_json_sax.h"

namespace fdl::tok {

namespace {

// The SAX handler: builds out.root as a DOM, except for model.vocab and model.merges.
struct SaxReader {
    FastTokenizerJson& out;
    std::vector<json*> stack;
    std::string cur_key;    // pending key of the innermost DOM object
    json* model = nullptr;  // root["model"] while it is being read
    enum Mode { Dom, Vocab, Merges, MergePair } mode = Dom;
    std::string vocab_key;
    int pair_n = 0;

    explicit SaxReader(FastTokenizerJson& o) : out(o) {}

    json* add(json v) {
        if (stack.empty()) {
            out.root = std::move(v);
            return &out.root;
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
            out.vocab.emplace_back(std::move(vocab_key), int32_t(v));
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
            out.merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
            return true;
        }
        if (mode == MergePair) {
            if (pair_n == 0) out.merges.emplace_back(std::move(v), std::string());
            else if (pair_n == 1) out.merges.back().second = std::move(v);
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
            if (out.have_vocab) return false;  // a second one: leave it to the DOM reader
            mode = Vocab;
            return true;
        }
        const bool is_model = stack.size() == 1 && out.root.is_object() && cur_key == "model";
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
            out.have_vocab = true;
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
            if (out.have_merges) return false;
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
            out.have_merges = true;
            return true;
        }
        if (stack.empty() || mode != Dom) return false;
        stack.pop_back();
        return true;
    }
    bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
};

}  // namespace

bool read_tokenizer_json_fast(const std::string& text, FastTokenizerJson& out) {
    SaxReader reader(out);
    return json::sax_parse(text, &reader);
}

}  // namespace fdl::tok
