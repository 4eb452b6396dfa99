// Reads a tokenizer.json quickly: model.vocab and model.merges (nearly all of a 6 MB file) go
// straight into flat lists through nlohmann's SAX interface, everything else becomes a small
// DOM. Whatever is unexpected inside those two (a wrong type, a malformed merge) or a syntax
// error makes it give up; the caller then reads the file as a plain DOM, whose checks give
// the precise error message.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/json_access.h"

namespace fdl::tok {

struct FastTokenizerJson {
    json root;  // the file without the lists below
    bool have_vocab = false, have_merges = false;
    std::vector<std::pair<std::string, int32_t>> vocab;        // model.vocab in file order
    std::vector<std::pair<std::string, std::string>> merges;  // model.merges in file order
};

// Fills `out` from the text of a tokenizer.json; false when the caller must read it as a DOM.
bool read_tokenizer_json_fast(const std::string& text, FastTokenizerJson& out);

}  // namespace fdl::tok
