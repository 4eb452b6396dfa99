// Downloading a model repository into the Hugging Face cache: the file list from the hub's API,
// each file fetched through its resolve URL (resumed with a Range request, retried when the
// connection breaks), checked against the size and checksum the hub lists, moved into blobs/
// only when it verifies, and linked into snapshots/COMMIT/ only when every file has.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/error.h"
#include "hub/repo.h"
#include "hub/settings.h"

namespace fdl::hub {

// One file of the download, as the hub lists it.
struct RemoteFile {
    std::string name;      // path in the repository
    uint64_t size = 0;     // bytes
    std::string id;        // the blob's name in the cache: the LFS SHA-256, else the git blob id
    bool lfs = false;      // id is a SHA-256 (else a git blob SHA-1)
    bool present = false;  // already in the cache
    uint64_t partial = 0;  // bytes of an earlier unfinished download that will be resumed
};

// What a pull reports while it runs (the command draws progress bars from it).
class PullObserver {
public:
    virtual ~PullObserver() = default;
    // Every file, in the order they are handled; `commit` is what the revision points to.
    virtual void planned(const std::vector<RemoteFile>& files, const std::string& commit) {}
    virtual void file_started(const RemoteFile& f, uint64_t from) {}
    virtual void file_progress(const RemoteFile& f, uint64_t have) {}
    virtual void file_verifying(const RemoteFile& f) {}
    // downloaded: false when the file was already in the cache.
    virtual void file_finished(const RemoteFile& f, bool downloaded) {}
    virtual void note(const std::string& line) {}  // a retry, a wait for a lock
};

struct PullOptions {
    std::string user_agent = "fastdllm";
    const std::atomic<bool>* abort = nullptr;  // set (by Ctrl-C): stop, keep partial files
    int attempts = 5;                          // per file, for broken or stalled connections
    double retry_wait_s = 0.5;                 // times the attempt number
};

struct PullResult {
    std::string commit;
    std::string snapshot;       // the folder to load
    int files = 0;
    int downloaded = 0;         // files fetched (the rest were in the cache)
    uint64_t bytes = 0;         // every file's size
    uint64_t transferred = 0;   // bytes received
    bool offline = false;       // HF_HUB_OFFLINE: the cache was used without asking the hub
};

std::string human_bytes(uint64_t bytes);  // "3.09 GB", "754 B"

// Stopped by the abort flag: partial downloads are kept for the next pull.
struct Interrupted : Error {
    using Error::Error;
};

// Throws fdl::Error with one line saying what went wrong (no network, a refused token, a
// repository that does not exist, a full disk, a checksum mismatch, ...). The cache is left
// consistent: unfinished files only as blobs/ID.incomplete, nothing unverified in a snapshot.
PullResult pull(const HubSettings& settings, const RepoRef& ref, const PullOptions& opts, PullObserver& observer);

}  // namespace fdl::hub
