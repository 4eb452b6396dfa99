#include "engine/io/memory.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/io/error.h"

namespace fdl {

namespace {

// "<key>: <number> kB" from a /proc file, in bytes; false when absent.
bool read_kb_field(const char* file, const char* key, uint64_t& out) {
    std::ifstream in(file);
    std::string line;
    const std::string k = std::string(key) + ":";
    while (std::getline(in, line)) {
        if (line.rfind(k, 0) != 0) continue;
        std::istringstream ss(line.substr(k.size()));
        uint64_t kb = 0;
        if (!(ss >> kb)) return false;
        out = kb * 1024;
        return true;
    }
    return false;
}

// A file holding one number ("max" and anything else: false).
bool read_number(const std::string& file, uint64_t& out) {
    std::ifstream in(file);
    std::string s;
    if (!(in >> s) || s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
    try {
        out = std::stoull(s);
    } catch (...) {
        return false;
    }
    return true;
}

// The memory limit of this process's cgroup minus its anonymous memory (page cache does not
// count: the kernel reclaims it before failing), for cgroup v2 and v1; false when unlimited.
bool cgroup_room(uint64_t& out) {
    std::ifstream in("/proc/self/cgroup");
    std::string line, v2, v1;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) v2 = "/sys/fs/cgroup" + line.substr(3);
        const size_t m = line.find(":memory:");
        if (m != std::string::npos) v1 = "/sys/fs/cgroup/memory" + line.substr(m + 8);
    }
    auto stat_field = [](const std::string& file, const char* key, uint64_t& v) {
        std::ifstream st(file);
        std::string k;
        uint64_t x;
        while (st >> k >> x)
            if (k == key) { v = x; return true; }
        return false;
    };
    uint64_t limit = 0, anon = 0;
    bool ok = false;
    for (const std::string& dir : {v2, v1, std::string("/sys/fs/cgroup/memory")}) {
        if (dir.empty()) continue;
        if (read_number(dir + "/memory.max", limit)) ok = stat_field(dir + "/memory.stat", "anon", anon);
        else if (read_number(dir + "/memory.limit_in_bytes", limit)) ok = stat_field(dir + "/memory.stat", "rss", anon);
        if (ok) break;
    }
    if (!ok || limit >= (uint64_t(1) << 62)) return false;
    out = limit > anon ? limit - anon : 0;
    return true;
}

}  // namespace

uint64_t available_memory() {
    uint64_t avail = UINT64_MAX, v = 0;
    if (read_kb_field("/proc/meminfo", "MemAvailable", v)) avail = v;
    if (cgroup_room(v)) avail = std::min(avail, v);
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t used = 0;
        read_kb_field("/proc/self/status", "VmSize", used);
        const uint64_t lim = uint64_t(rl.rlim_cur);
        avail = std::min(avail, lim > used ? lim - used : 0);
    }
    return avail;
}

std::string format_bytes(uint64_t b) {
    char buf[64];
    if (b >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / double(uint64_t(1) << 30));
    else if (b >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.0f MiB", double(b) / double(1 << 20));
    else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.0f KiB", double(b) / 1024.0);
    else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
    return buf;
}

void require_memory(uint64_t need, const std::string& what) {
    const uint64_t avail = available_memory();
    if (need <= avail) return;
    throw Error(what + " needs " + format_bytes(need) + ", but only " + format_bytes(avail) +
                " of memory is available");
}

}  // namespace fdl
