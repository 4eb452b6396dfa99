#include "engine/io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/io/error.h"

namespace fdl {

std::string read_file(const std::string& path) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) throw file_error(path, "is a directory, not a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw file_error(path, "read error");
    return std::move(ss).str();
}

bool file_exists(const std::string& path) {
    struct stat sb {};
    return ::stat(path.c_str(), &sb) == 0;
}

nlohmann::json parse_json(std::string_view text, const std::string& file) {
    try {
        return nlohmann::json::parse(text);
    } catch (const std::exception& e) {
        throw file_error(file, std::string("invalid JSON: ") + e.what());
    }
}

nlohmann::json read_json_file(const std::string& path) { return parse_json(read_file(path), path); }

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw file_error(path_, std::string("cannot write: ") + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(tmp_.c_str());
    }
}

void AtomicFile::write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw file_error(path_, std::string("write failed: ") + std::strerror(errno));
        }
        p += w;
        n -= size_t(w);
    }
}

void AtomicFile::commit() {
    const int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp_.c_str());
        throw file_error(path_, std::string("write failed: ") + std::strerror(e));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp_.c_str());
        throw file_error(path_, std::string("cannot replace: ") + std::strerror(e));
    }
}

void write_file_atomic(const std::string& path, std::string_view text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

}  // namespace fdl
