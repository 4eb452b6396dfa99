// fastdllm tokenize: the token ids of a text (comma-separated, ready for --prompt-ids).
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "engine/tokenizer/tokenizer.h"

namespace fdl::cli {

int cmd_tokenize(int argc, char** argv, int first) {
    std::string model_dir, tokenizer_file;
    bool as_json = false;
    ArgParser p("tokenize", "(-m DIR | --tokenizer FILE) [--json] TEXT");
    p.add({"-m", "--model", "DIR", "model folder or ORG/NAME (reads its tokenizer files)", [&](const std::string& v) { model_dir = v; }});
    p.add({"", "--tokenizer", "FILE", "a tokenizer.json file", [&](const std::string& v) { tokenizer_file = v; }});
    p.add({"", "--json", "", "print {\"ids\": [...]}", [&](const std::string&) { as_json = true; }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help();
        return 0;
    }
    if (rest.size() != 1) throw UsageError{"give exactly one TEXT argument (quote it)"};
    if (!model_dir.empty() && !tokenizer_file.empty()) throw UsageError{"give -m or --tokenizer, not both"};
    if (tokenizer_file.empty()) model_dir = resolve_model_dir(model_dir);
    Tokenizer tok = tokenizer_file.empty() ? Tokenizer::from_model_dir(model_dir) : Tokenizer::from_file(tokenizer_file);
    std::vector<int32_t> ids = tok.encode(rest[0]);
    if (as_json) {
        std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n";
        return 0;
    }
    for (size_t i = 0; i < ids.size(); i++) std::cout << (i ? "," : "") << ids[i];
    std::cout << "\n";
    return 0;
}

}  // namespace fdl::cli
