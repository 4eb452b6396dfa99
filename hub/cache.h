// The Hugging Face cache, laid out as huggingface_hub lays it out, so that either tool uses what
// the other downloaded:
//
//   CACHE/models--ORG--NAME/blobs/ID                 a file's content (ID: its LFS SHA-256, else its git blob id)
//                           blobs/ID.incomplete      a download in progress (resumable)
//                           refs/REVISION            the commit a branch or tag pointed to
//                           snapshots/COMMIT/FILE -> ../../blobs/ID
//   CACHE/.locks/models--ORG--NAME/ID.lock           held while a blob is downloaded
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hub/repo.h"

namespace fdl::hub {

std::string repo_folder_name(const std::string& repo);  // "ORG/NAME" -> "models--ORG--NAME"

struct CachePaths {
    std::string cache_dir, root;  // root: CACHE/models--ORG--NAME
    std::string blob(const std::string& id) const { return root + "/blobs/" + id; }
    std::string incomplete(const std::string& id) const { return blob(id) + ".incomplete"; }
    std::string ref(const std::string& revision) const { return root + "/refs/" + revision; }
    std::string snapshot(const std::string& commit) const { return root + "/snapshots/" + commit; }
    std::string lock(const std::string& id) const;
    // The symlink target of snapshots/COMMIT/FILE: "../../blobs/ID" (one more "../" per folder in FILE).
    static std::string link_target(const std::string& file, const std::string& id);
};
CachePaths cache_paths(const std::string& cache_dir, const std::string& repo);

// The commit a revision names in the cache: the revision itself when it is a commit hash, else
// the content of refs/REVISION; empty when the cache has no such ref.
std::string cached_commit(const CachePaths& p, const std::string& revision);

// Whether a folder holds what the loader needs: config.json and model.safetensors or
// model.safetensors.index.json (through the symlinks). Otherwise *missing names what is missing.
bool snapshot_is_complete(const std::string& dir, std::string* missing = nullptr);

// The snapshot folder of `ref` when it is in the cache and complete; "" otherwise, with the
// reason in *why ("not in the cache", "revision main is not in the cache", ...).
std::string find_snapshot(const std::string& cache_dir, const RepoRef& ref, std::string* why = nullptr);

struct CachedRepo {
    std::string repo;                          // ORG/NAME
    std::string path;                          // CACHE/models--ORG--NAME
    uint64_t bytes = 0;                        // complete blobs
    uint64_t incomplete_bytes = 0;             // partial downloads
    std::map<std::string, std::string> refs;   // revision -> commit
    std::vector<std::string> snapshots;        // commits
    bool complete = false;                     // refs/main (or the only snapshot) has config and weights
};
// The model repositories in the cache, sorted by name (datasets and spaces are left out).
std::vector<CachedRepo> list_cached(const std::string& cache_dir);

// Removes a repository's folder (and its lock folder) from the cache; returns the bytes it held.
// Throws fdl::Error when it is not in the cache or cannot be removed.
uint64_t remove_cached(const std::string& cache_dir, const std::string& repo);

}  // namespace fdl::hub
