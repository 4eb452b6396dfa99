// Reads the tokenizer files of a model into the tables of each stage: tokenizer.json
// (normalizer, pre_tokenizer, BPE model, decoder check, added tokens) and the transformers
// side files added_tokens.json and tokenizer_config.json. Every problem is an
// fdl::Error("<path>: <problem>").
#pragma once
#include <string>

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace fdl::tok {

// What a tokenizer is read into, one member per stage of HF's pipeline.
struct TokenizerTables {
    Normalizer normalizer;
    PreTokenizer pre_tokenizer;
    BpeModel model;
    AddedVocabulary added;
};

// Reads tokenizer.json into empty tables.
void load_tokenizer_json(const std::string& path, TokenizerTables& t);

// Adds the tokens listed in <dir>/added_tokens.json and <dir>/tokenizer_config.json
// ("added_tokens_decoder") when those files exist, skipping contents already known. Returns
// whether any token was added.
bool load_side_files(const std::string& dir, TokenizerTables& t);

}  // namespace fdl::tok
