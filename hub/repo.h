// Model repositories on the Hugging Face hub: names (ORG/NAME[@REVISION]) and which of a
// repository's files fastdllm needs. Pure functions, no network and no files.
#pragma once
#include <string>
#include <vector>

namespace fdl::hub {

// A repository and the revision asked for.
struct RepoRef {
    std::string repo;             // "ORG/NAME"
    std::string revision = "main";  // a branch, a tag or a commit hash
    bool revision_given = false;  // "@REV" was written
    std::string text() const { return revision_given ? repo + "@" + revision : repo; }
};

// Parses "ORG/NAME" or "ORG/NAME@REVISION" with the hub's rules for names (letters, digits, '-',
// '_', '.'; no "--" or ".."; at most 96 characters). False, and why in *why, otherwise.
bool parse_repo_ref(const std::string& text, RepoRef& out, std::string* why = nullptr);

// Whether a -m value is meant as a repository rather than a path: exactly one '/' before any
// '@', and it does not start with '.', '/' or '~'. (An existing folder is always a folder.)
bool looks_like_repo_ref(const std::string& text);

bool is_commit_hash(const std::string& s);  // 40 lowercase hex digits, as the cache names snapshots

// What fastdllm downloads of a repository: config, generation config, tokenizer files and the
// safetensors weights; never the .bin/.pth copies of the same weights, READMEs or code.
struct FileSelection {
    std::vector<std::string> small;  // config and tokenizer files present in the repository
    std::string index;               // "model.safetensors.index.json" when the weights are sharded
    std::string single;              // "model.safetensors" when they are not
};
bool is_metadata_file(const std::string& name);  // config.json, tokenizer.json, ...
// Throws fdl::Error when there is no config.json or no safetensors weights.
FileSelection select_files(const std::string& repo, const std::vector<std::string>& files);

// The shard file names of a model.safetensors.index.json, sorted and unique. Throws fdl::Error
// (naming `file`) for a malformed index or a shard name that is not a plain file name.
std::vector<std::string> shards_from_index(const std::string& json_text, const std::string& file);

}  // namespace fdl::hub
