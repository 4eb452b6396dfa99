#include "hub/repo.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "engine/io/error.h"
#include "engine/io/files.h"

namespace fdl::hub {

namespace {

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

// One part of ORG/NAME: the hub's validate_repo_id rules.
bool valid_part(const std::string& s) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), name_char)) return false;
    auto edge = [](char c) { return c != '-' && c != '.'; };
    return edge(s.front()) && edge(s.back());
}

}  // namespace

bool is_commit_hash(const std::string& s) {
    return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool parse_repo_ref(const std::string& text, RepoRef& out, std::string* why) {
    auto fail = [&](const std::string& w) {
        if (why) *why = w;
        return false;
    };
    RepoRef r;
    std::string repo = text;
    if (size_t at = text.find('@'); at != std::string::npos) {
        repo = text.substr(0, at);
        r.revision = text.substr(at + 1);
        r.revision_given = true;
        if (r.revision.empty()) return fail("empty revision after '@'");
        if (r.revision.size() > 255 || r.revision.find("..") != std::string::npos || r.revision.front() == '/' ||
            r.revision.back() == '/' || r.revision.find("//") != std::string::npos)
            return fail("'" + r.revision + "' is not a valid revision");
        for (char c : r.revision)
            if (c <= ' ' || c == 0x7f || c == '\\' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[')
                return fail("'" + r.revision + "' is not a valid revision");
    }
    const size_t slash = repo.find('/');
    if (slash == std::string::npos || repo.find('/', slash + 1) != std::string::npos)
        return fail("a model on the hub is named ORG/NAME, e.g. Efficient-Large-Model/Fast_dLLM_v2_1.5B");
    if (repo.size() > 96) return fail("a repository name has at most 96 characters");
    if (repo.find("--") != std::string::npos || repo.find("..") != std::string::npos)
        return fail("a repository name cannot contain '--' or '..'");
    if (!valid_part(repo.substr(0, slash)) || !valid_part(repo.substr(slash + 1)))
        return fail("'" + repo + "': names use letters, digits, '-', '_' and '.', and start and end with a letter or digit");
    r.repo = repo;
    out = r;
    return true;
}

bool looks_like_repo_ref(const std::string& text) {
    if (text.empty() || text[0] == '.' || text[0] == '/' || text[0] == '~') return false;
    const std::string repo = text.substr(0, text.find('@'));
    return std::count(repo.begin(), repo.end(), '/') == 1;
}

bool is_metadata_file(const std::string& name) {
    static const char* const kNames[] = {"config.json",         "generation_config.json",  "tokenizer.json",
                                         "tokenizer_config.json", "added_tokens.json",     "special_tokens_map.json",
                                         "vocab.json",          "merges.txt",              "chat_template.jinja"};
    return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; });
}

FileSelection select_files(const std::string& repo, const std::vector<std::string>& files) {
    FileSelection s;
    auto has = [&](const std::string& n) { return std::find(files.begin(), files.end(), n) != files.end(); };
    for (const std::string& f : files)
        if (is_metadata_file(f)) s.small.push_back(f);
    std::sort(s.small.begin(), s.small.end());
    // The loader's order (engine/io/safetensors.cpp): an index wins over a single file.
    if (has("model.safetensors.index.json")) s.index = "model.safetensors.index.json";
    else if (has("model.safetensors")) s.single = "model.safetensors";
    if (!has("config.json")) throw Error(repo + ": the repository has no config.json; it is not a model fastdllm can run");
    if (s.index.empty() && s.single.empty())
        throw Error(repo + ": the repository has no safetensors weights (model.safetensors or model.safetensors.index.json); "
                           "fastdllm does not read .bin or .pth files");
    return s;
}

std::vector<std::string> shards_from_index(const std::string& json_text, const std::string& file) {
    const nlohmann::json j = parse_json(json_text, file);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw file_error(file, "no \"weight_map\" object");
    std::vector<std::string> out;
    for (const auto& [tensor, v] : j["weight_map"].items()) {
        if (!v.is_string()) throw file_error(file, "weight_map entry " + tensor + " is not a file name");
        const std::string f = v.get<std::string>();
        if (f.empty() || f[0] == '.' || f.find('/') != std::string::npos || f.find('\\') != std::string::npos)
            throw file_error(file, "weight_map entry " + tensor + " names an invalid file \"" + f + "\"");
        out.push_back(f);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    if (out.empty()) throw file_error(file, "the weight_map is empty");
    return out;
}

}  // namespace fdl::hub
