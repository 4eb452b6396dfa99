#include "hub/pull.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/io/files.h"
#include "hub/cache.h"
#include "hub/digest.h"
#include "hub/http.h"

namespace fs = std::filesystem;

namespace fdl::hub {

std::string human_bytes(uint64_t b) {
    char buf[32];
    if (b >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
    else if (b >= 1000000ull) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
    else if (b >= 1000ull) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)b);
    return buf;
}

namespace {

bool is_hex(const std::string& s, size_t len) {
    return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The hub's own explanation (X-Error-Message), kept to one line.
std::string hub_message(const HttpResult& r) {
    std::string m = r.header("x-error-message");
    for (char& c : m)
        if (c == '\n' || c == '\r') c = ' ';
    return m.empty() ? "" : " (the hub says: " + m + ")";
}

void make_dirs(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw file_error(dir, "cannot create the folder: " + ec.message());
}

// An open file descriptor, closed on every way out.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// huggingface_hub's lock for downloading one blob (CACHE/.locks/models--ORG--NAME/ID.lock), so
// that this tool and the Hugging Face tools never write the same blob at once.
class BlobLock {
public:
    BlobLock(const std::string& path, const std::string& file, PullObserver& obs, const std::atomic<bool>* abort) {
        make_dirs(path.substr(0, path.find_last_of('/')));
        fd_.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_.fd < 0) throw file_error(path, std::string("cannot create the lock file: ") + std::strerror(errno));
        if (::flock(fd_.fd, LOCK_EX | LOCK_NB) == 0) return;
        obs.note(file + ": waiting for another download of the same file to finish (" + path + ")");
        while (::flock(fd_.fd, LOCK_EX) != 0) {
            if (errno != EINTR) throw file_error(path, std::string("cannot lock: ") + std::strerror(errno));
            if (abort && abort->load()) throw Interrupted("interrupted");
        }
    }

private:
    Fd fd_;
};

class Puller {
public:
    Puller(const HubSettings& s, const RepoRef& ref, const PullOptions& o, PullObserver& obs)
        : s_(s), ref_(ref), opts_(o), obs_(obs), http_(o.user_agent, s.token, o.abort),
          paths_(cache_paths(s.cache_dir, ref.repo)) {}

    PullResult run();

private:
    const HubSettings& s_;
    const RepoRef& ref_;
    const PullOptions& opts_;
    PullObserver& obs_;
    HttpClient http_;
    CachePaths paths_;
    std::string commit_;
    PullResult res_;

    [[noreturn]] void http_error(const HttpResult& r, const std::string& what, const std::string& url) const;
    std::map<std::string, RemoteFile> list_files();
    bool blob_ok(const RemoteFile& f) const;
    bool ensure(const RemoteFile& f);
    void download(const RemoteFile& f);
    void check_disk_space(const std::vector<RemoteFile>& plan) const;
    void link_snapshot(const std::vector<RemoteFile>& plan) const;
    void wait(double seconds) const;
    bool aborted() const { return opts_.abort && opts_.abort->load(); }
};

void Puller::http_error(const HttpResult& r, const std::string& what, const std::string& url) const {
    const std::string repo = ref_.repo, code = r.header("x-error-code");
    const std::string page = s_.endpoint + "/" + repo;
    if (r.aborted || aborted()) throw Interrupted("interrupted");
    if (r.cannot_connect)
        throw Error("cannot reach " + s_.endpoint + ": " + r.error +
                    " (no network? HF_ENDPOINT sets the hub; with HF_HUB_OFFLINE=1 only the cache is used)");
    if (!r.transport_ok) throw Error(repo + ": " + what + ": " + r.error + " (" + url + ")");
    const std::string token = s_.token_source.empty() ? "" : " (the token is from " + s_.token_source + ")";
    switch (r.status) {
    case 401:
        if (code == "RepoNotFound")
            throw Error(repo + ": no such repository on " + s_.endpoint + ", or it is private and needs a token in HF_TOKEN" + token);
        if (s_.token.empty())
            throw Error(repo + ": the hub refused access (401 Unauthorized): the repository is gated or private; set HF_TOKEN to "
                               "an access token of an account that may read it (" + s_.endpoint + "/settings/tokens)" + hub_message(r));
        throw Error(repo + ": the hub refused the token from " + s_.token_source + " (401 Unauthorized): check that it is a "
                           "valid access token (" + s_.endpoint + "/settings/tokens)" + hub_message(r));
    case 403:
        throw Error(repo + ": access denied (403 Forbidden): the repository is gated; ask for access on " + page +
                    " with the account whose token is in HF_TOKEN" + token + hub_message(r));
    case 404:
        if (code == "RevisionNotFound")
            throw Error(repo + ": no revision '" + ref_.revision + "' (a branch, tag or commit hash of " + page + ")");
        if (code == "EntryNotFound" || what != "the file list")
            throw Error(repo + ": " + what + " is listed by the hub but cannot be downloaded (404 Not Found at " + url + ")");
        throw Error(repo + ": no such repository on " + s_.endpoint + " (404 Not Found; check the name at " + page + ")");
    case 429:
        throw Error(repo + ": the hub is limiting requests (429 Too Many Requests); try again later" +
                    std::string(s_.token.empty() ? " or set HF_TOKEN" : "") + hub_message(r));
    default:
        throw Error(repo + ": " + what + ": the hub answered HTTP " + std::to_string(r.status) + " for " + url + hub_message(r));
    }
}

std::map<std::string, RemoteFile> Puller::list_files() {
    const std::string url = s_.endpoint + "/api/models/" + ref_.repo + "/revision/" + HttpClient::escape(ref_.revision) + "?blobs=true";
    const HttpResult r = http_.get(url);
    if (!r.transport_ok || r.status != 200) http_error(r, "the file list", url);
    nlohmann::json j;
    try {
        j = parse_json(r.body, url);
    } catch (const Error&) {
        throw Error(ref_.repo + ": " + url + " did not answer with JSON (is HF_ENDPOINT=" + s_.endpoint + " a Hugging Face hub?)");
    }
    const std::string bad = ref_.repo + ": unexpected file list from " + url + ": ";
    if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string() || !is_commit_hash(j["sha"].get<std::string>()))
        throw Error(bad + "no commit hash (\"sha\")");
    commit_ = j["sha"].get<std::string>();
    if (!j.contains("siblings") || !j["siblings"].is_array()) throw Error(bad + "no \"siblings\"");
    std::map<std::string, RemoteFile> out;
    for (const auto& sib : j["siblings"]) {
        if (!sib.is_object() || !sib.contains("rfilename") || !sib["rfilename"].is_string()) throw Error(bad + "a file without a name");
        RemoteFile f;
        f.name = sib["rfilename"].get<std::string>();
        const nlohmann::json* lfs = sib.contains("lfs") && sib["lfs"].is_object() ? &sib["lfs"] : nullptr;
        const nlohmann::json& sized = lfs ? *lfs : sib;
        if (sized.contains("size") && sized["size"].is_number_unsigned()) f.size = sized["size"].get<uint64_t>();
        else f.size = UINT64_MAX;  // checked when the file is wanted
        if (lfs) {
            f.lfs = true;
            f.id = lfs->contains("sha256") && (*lfs)["sha256"].is_string() ? (*lfs)["sha256"].get<std::string>() : "";
        } else {
            f.id = sib.contains("blobId") && sib["blobId"].is_string() ? sib["blobId"].get<std::string>() : "";
        }
        out[f.name] = f;
    }
    return out;
}

bool Puller::blob_ok(const RemoteFile& f) const {
    struct stat st {};
    return ::stat(paths_.blob(f.id).c_str(), &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) == f.size;
}

// The file's blob, downloaded unless the cache has it; true when it was downloaded.
bool Puller::ensure(const RemoteFile& f) {
    if (blob_ok(f)) return false;
    BlobLock lock(paths_.lock(f.id), f.name, obs_, opts_.abort);
    if (blob_ok(f)) return false;  // another process has just finished it
    ::unlink(paths_.blob(f.id).c_str());  // a blob of the wrong size is damaged
    try {
        download(f);
    } catch (...) {
        struct stat st {};  // an empty part (refused before any byte came) is not worth keeping
        if (::stat(paths_.incomplete(f.id).c_str(), &st) == 0 && st.st_size == 0) ::unlink(paths_.incomplete(f.id).c_str());
        throw;
    }
    return true;
}

void Puller::wait(double seconds) const {
    for (double t = 0; t < seconds && !aborted(); t += 0.05) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void Puller::download(const RemoteFile& f) {
    const std::string url = s_.endpoint + "/" + ref_.repo + "/resolve/" + commit_ + "/" + HttpClient::escape(f.name);
    const std::string part = paths_.incomplete(f.id), what = ref_.repo + ": " + f.name;
    bool started_over = false;
    for (;;) {
        Fd fd;
        fd.fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd.fd < 0) throw file_error(part, std::string("cannot create: ") + std::strerror(errno));
        struct stat st {};
        ::fstat(fd.fd, &st);
        uint64_t have = uint64_t(st.st_size);
        Digest d(f.lfs ? Digest::Kind::Sha256 : Digest::Kind::GitBlobSha1, f.size);
        if (have > f.size && ::ftruncate(fd.fd, 0) == 0) have = 0;
        const uint64_t resumed_from = have;
        if (have > 0) digest_file(d, part, have);  // the part already there, to checksum the whole
        obs_.file_started(f, have);
        DownloadSink sink;
        sink.restart = [&] {
            have = 0;
            d.reset();
            obs_.file_progress(f, 0);
        };
        sink.written = [&](const char* p, size_t n) {
            d.update(p, n);
            have += n;
            res_.transferred += n;
            obs_.file_progress(f, have);
        };
        int attempt = 1;
        bool refused_range = false;
        while (have < f.size) {
            const HttpResult r = http_.download(url, fd.fd, have, sink);
            if (r.aborted || aborted()) throw Interrupted("interrupted");
            if (r.write_failed) {
                const std::string why = std::strerror(r.write_errno);
                throw file_error(part, "write failed: " + why + " (the " + human_bytes(have) +
                                           " received are kept: free some space, or move the cache with HF_HOME, and pull again to resume)");
            }
            if (r.status == 416 && !refused_range) {  // the part is not a prefix of what is served now
                refused_range = true;
                if (::ftruncate(fd.fd, 0) != 0) throw file_error(part, std::string("cannot truncate: ") + std::strerror(errno));
                sink.restart();
                continue;
            }
            const bool server_busy = r.status >= 500 || r.status == 429;
            if (r.status >= 300 && !server_busy && (r.transport_ok || r.status >= 400)) http_error(r, f.name, url);
            if (r.transport_ok && r.status < 300 && have >= f.size) break;
            if (!r.transport_ok && !r.transient && !server_busy) http_error(r, f.name, url);
            const std::string reason = server_busy ? "HTTP " + std::to_string(r.status)
                                       : r.transport_ok ? "the server sent fewer bytes than the hub lists"
                                                        : r.error;
            if (attempt >= opts_.attempts)
                throw Error(what + ": the download broke off " + std::to_string(attempt) + " times, last at " + human_bytes(have) +
                            " of " + human_bytes(f.size) + " (" + reason + "); run the same pull again to resume");
            attempt++;
            obs_.note(f.name + ": the connection broke at " + human_bytes(have) + " (" + reason + "); resuming, attempt " +
                      std::to_string(attempt) + " of " + std::to_string(opts_.attempts));
            wait(opts_.retry_wait_s * (attempt - 1));
            if (aborted()) throw Interrupted("interrupted");
        }
        obs_.file_verifying(f);
        const std::string got = d.hex();
        if (have == f.size && got == f.id) {
            if (::fsync(fd.fd) != 0) throw file_error(part, std::string("cannot sync to disk: ") + std::strerror(errno));
            if (::rename(part.c_str(), paths_.blob(f.id).c_str()) != 0)
                throw file_error(part, std::string("cannot rename into place: ") + std::strerror(errno));
            return;
        }
        ::unlink(part.c_str());
        if (resumed_from > 0 && !started_over) {  // the part kept from before may be what is wrong
            started_over = true;
            obs_.note(f.name + ": the resumed download does not match its checksum; downloading it again from the start");
            continue;
        }
        if (have != f.size)
            throw Error(what + ": received " + std::to_string(have) + " bytes where the hub lists " + std::to_string(f.size) +
                        " (deleted; nothing was added to the cache)");
        throw Error(what + ": checksum mismatch: the hub lists " + std::string(f.lfs ? "SHA-256 " : "git blob id ") + f.id +
                    ", the download has " + got + " (deleted; nothing was added to the cache)");
    }
}

void Puller::check_disk_space(const std::vector<RemoteFile>& plan) const {
    uint64_t need = 0;
    for (const RemoteFile& f : plan)
        if (!f.present) need += f.size - f.partial;
    struct statvfs v {};
    const std::string dir = paths_.root + "/blobs";
    if (need == 0 || ::statvfs(dir.c_str(), &v) != 0) return;
    const uint64_t avail = uint64_t(v.f_bavail) * v.f_frsize;
    if (avail < need)
        throw Error("not enough disk space for " + ref_.repo + ": the download needs " + human_bytes(need) + ", " + human_bytes(avail) +
                    " is free in " + dir + " (HF_HOME or HF_HUB_CACHE puts the cache elsewhere)");
}

// snapshots/COMMIT/FILE -> ../../blobs/ID for every file, each link replaced atomically.
void Puller::link_snapshot(const std::vector<RemoteFile>& plan) const {
    const std::string snap = paths_.snapshot(commit_);
    make_dirs(snap);
    for (const RemoteFile& f : plan) {
        const std::string link = snap + "/" + f.name, target = CachePaths::link_target(f.name, f.id);
        char buf[4096];
        const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
        if (n > 0 && std::string(buf, size_t(n)) == target) continue;
        const std::string tmp = link + ".tmp." + std::to_string(::getpid());
        ::unlink(tmp.c_str());
        if (::symlink(target.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link.c_str()) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            throw file_error(link, std::string("cannot create the link: ") + std::strerror(err));
        }
    }
}

PullResult Puller::run() {
    std::map<std::string, RemoteFile> remote = list_files();
    std::vector<std::string> names;
    for (const auto& [name, f] : remote) names.push_back(name);
    const FileSelection sel = select_files(ref_.repo, names);
    auto wanted = [&](const std::string& name) {
        auto it = remote.find(name);
        if (it == remote.end()) throw Error(ref_.repo + ": the weight index names " + name + ", which the repository does not have");
        const RemoteFile& f = it->second;
        if (f.size == UINT64_MAX || !is_hex(f.id, f.lfs ? 64 : 40))
            throw Error(ref_.repo + ": the hub's file list gives no size or " + (f.lfs ? "SHA-256" : "blob id") + " for " + name +
                        " (is HF_ENDPOINT=" + s_.endpoint + " a Hugging Face hub?)");
        return f;
    };
    make_dirs(paths_.root + "/blobs");
    make_dirs(paths_.root + "/snapshots");

    std::vector<RemoteFile> plan;
    for (const std::string& n : sel.small) plan.push_back(wanted(n));
    bool index_fetched = false;
    if (!sel.index.empty()) {  // the shards are known once the index is read
        const RemoteFile idx = wanted(sel.index);
        index_fetched = ensure(idx);
        const std::vector<std::string> shards = shards_from_index(read_file(paths_.blob(idx.id)), ref_.repo + "/" + sel.index);
        plan.push_back(idx);
        for (const std::string& s : shards) plan.push_back(wanted(s));
    } else {
        plan.push_back(wanted(sel.single));
    }
    for (RemoteFile& f : plan) {
        f.present = blob_ok(f);
        struct stat st {};
        if (!f.present && ::stat(paths_.incomplete(f.id).c_str(), &st) == 0 && uint64_t(st.st_size) <= f.size)
            f.partial = uint64_t(st.st_size);
        res_.bytes += f.size;
    }
    check_disk_space(plan);
    obs_.planned(plan, commit_);
    for (const RemoteFile& f : plan) {
        if (aborted()) throw Interrupted("interrupted");
        const bool downloaded = (f.present ? false : ensure(f)) || (f.name == sel.index && index_fetched);
        res_.downloaded += downloaded;
        obs_.file_finished(f, downloaded);
    }
    // Only now that every file is verified does the snapshot appear, and the ref point to it.
    link_snapshot(plan);
    if (ref_.revision != commit_) {
        const std::string ref = paths_.ref(ref_.revision);
        std::error_code ec;
        if (!fs::exists(ref, ec) || read_file(ref) != commit_) {
            make_dirs(fs::path(ref).parent_path().string());
            write_file_atomic(ref, commit_);
        }
    }
    res_.commit = commit_;
    res_.snapshot = paths_.snapshot(commit_);
    res_.files = int(plan.size());
    return res_;
}

}  // namespace

PullResult pull(const HubSettings& settings, const RepoRef& ref, const PullOptions& opts, PullObserver& observer) {
    if (settings.offline) {
        std::string why;
        const std::string snap = find_snapshot(settings.cache_dir, ref, &why);
        if (snap.empty()) throw Error(ref.text() + ": " + why + "; HF_HUB_OFFLINE is set, so nothing is downloaded (unset it to pull)");
        PullResult r;
        r.offline = true;
        r.snapshot = snap;
        r.commit = snap.substr(snap.find_last_of('/') + 1);
        return r;
    }
    try {
        return Puller(settings, ref, opts, observer).run();
    } catch (const Interrupted&) {
        throw;
    } catch (const Error& e) {
        // With no network, say whether the cache already holds the model.
        std::string msg = e.what();
        if (msg.rfind("cannot reach ", 0) == 0) {
            const std::string snap = find_snapshot(settings.cache_dir, ref);
            if (!snap.empty()) msg += "; the cache already has " + ref.text() + " (" + snap + ")";
            throw Error(msg);
        }
        throw;
    }
}

}  // namespace fdl::hub
