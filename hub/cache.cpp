#include "hub/cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/error.h"

namespace fs = std::filesystem;

namespace fdl::hub {

namespace {

bool is_file(const std::string& p) {  // follows symlinks: a snapshot link counts only with its blob
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_small(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    if (f) ss << f.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

std::string repo_folder_name(const std::string& repo) {
    std::string out = "models";
    size_t start = 0;
    while (true) {
        size_t slash = repo.find('/', start);
        out += "--" + repo.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return out;
}

CachePaths cache_paths(const std::string& cache_dir, const std::string& repo) {
    CachePaths p;
    p.cache_dir = cache_dir;
    p.root = cache_dir + "/" + repo_folder_name(repo);
    return p;
}

std::string CachePaths::lock(const std::string& id) const {
    return cache_dir + "/.locks/" + root.substr(root.find_last_of('/') + 1) + "/" + id + ".lock";
}

std::string CachePaths::link_target(const std::string& file, const std::string& id) {
    std::string up = "../../";
    for (char c : file)
        if (c == '/') up += "../";
    return up + "blobs/" + id;
}

std::string cached_commit(const CachePaths& p, const std::string& revision) {
    if (is_commit_hash(revision)) return revision;
    const std::string c = read_small(p.ref(revision));
    return is_commit_hash(c) ? c : "";
}

bool snapshot_is_complete(const std::string& dir, std::string* missing) {
    if (!is_file(dir + "/config.json")) {
        if (missing) *missing = "config.json";
        return false;
    }
    const std::string index = dir + "/model.safetensors.index.json";
    if (is_file(index)) return true;  // the shards are checked by the loader, which names a missing one
    if (is_file(dir + "/model.safetensors")) return true;
    if (missing) *missing = "model.safetensors";
    return false;
}

std::string find_snapshot(const std::string& cache_dir, const RepoRef& ref, std::string* why) {
    const CachePaths p = cache_paths(cache_dir, ref.repo);
    auto fail = [&](const std::string& w) {
        if (why) *why = w;
        return std::string();
    };
    if (!is_dir(p.root)) return fail("not in the Hugging Face cache at " + cache_dir);
    const std::string commit = cached_commit(p, ref.revision);
    if (commit.empty()) return fail("revision " + ref.revision + " is not in the Hugging Face cache at " + p.root);
    const std::string dir = p.snapshot(commit);
    std::string missing;
    if (!snapshot_is_complete(dir, &missing))
        return fail("the cached snapshot " + dir + " has no " + missing + ": an unfinished download");
    return dir;
}

std::vector<CachedRepo> list_cached(const std::string& cache_dir) {
    std::vector<CachedRepo> out;
    std::error_code ec;
    if (!fs::is_directory(cache_dir, ec)) return out;
    for (const fs::directory_entry& e : fs::directory_iterator(cache_dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("models--", 0) != 0 || !e.is_directory(ec)) continue;
        CachedRepo r;
        r.path = e.path().string();
        r.repo = name.substr(8);  // "--" never occurs inside a name, so each one was a '/'
        for (size_t i; (i = r.repo.find("--")) != std::string::npos;) r.repo.replace(i, 2, "/");
        std::error_code ec2;
        for (const fs::directory_entry& b : fs::directory_iterator(r.path + "/blobs", ec2)) {
            if (!b.is_regular_file(ec2)) continue;
            const uint64_t size = b.file_size(ec2);
            if (b.path().extension() == ".incomplete") r.incomplete_bytes += size;
            else r.bytes += size;
        }
        ec2.clear();
        const fs::path refs = r.path + "/refs";
        for (auto it = fs::recursive_directory_iterator(refs, ec2); !ec2 && it != fs::recursive_directory_iterator(); it.increment(ec2))
            if (it->is_regular_file(ec2)) r.refs[fs::relative(it->path(), refs, ec2).string()] = read_small(it->path().string());
        ec2.clear();
        for (const fs::directory_entry& s : fs::directory_iterator(r.path + "/snapshots", ec2))
            if (s.is_directory(ec2)) r.snapshots.push_back(s.path().filename().string());
        std::sort(r.snapshots.begin(), r.snapshots.end());
        std::string main_commit = r.refs.count("main") ? r.refs["main"] : (r.snapshots.size() == 1 ? r.snapshots[0] : "");
        r.complete = !main_commit.empty() && snapshot_is_complete(r.path + "/snapshots/" + main_commit);
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const CachedRepo& a, const CachedRepo& b) { return a.repo < b.repo; });
    return out;
}

uint64_t remove_cached(const std::string& cache_dir, const std::string& repo) {
    const CachePaths p = cache_paths(cache_dir, repo);
    std::error_code ec;
    if (!fs::is_directory(p.root, ec)) throw Error(repo + ": not in the Hugging Face cache at " + cache_dir);
    uint64_t bytes = 0;
    for (auto it = fs::recursive_directory_iterator(p.root, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += it->file_size(ec);
    ec.clear();
    fs::remove_all(p.root, ec);  // symlinks are removed, never followed
    if (ec) throw Error(p.root + ": cannot remove: " + ec.message());
    fs::remove_all(fs::path(p.lock("x")).parent_path(), ec);
    return bytes;
}

}  // namespace fdl::hub
