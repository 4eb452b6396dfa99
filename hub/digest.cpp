#include "hub/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/io/error.h"

namespace fdl::hub {

struct Digest::Ctx {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(md); }
};

Digest::Digest(Kind kind, uint64_t size) : kind_(kind), size_(size), ctx_(std::make_unique<Ctx>()) {
    if (!ctx_->md) throw std::bad_alloc();
    reset();
}

Digest::~Digest() = default;

void Digest::reset() {
    EVP_DigestInit_ex(ctx_->md, kind_ == Kind::Sha256 ? EVP_sha256() : EVP_sha1(), nullptr);
    if (kind_ == Kind::GitBlobSha1) {
        const std::string header = "blob " + std::to_string(size_);
        EVP_DigestUpdate(ctx_->md, header.c_str(), header.size() + 1);  // with its '\0'
    }
}

void Digest::update(const void* data, size_t n) { EVP_DigestUpdate(ctx_->md, data, n); }

std::string Digest::hex() {
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    if (!copy) throw std::bad_alloc();
    EVP_MD_CTX_copy_ex(copy, ctx_->md);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(copy, out, &len);
    EVP_MD_CTX_free(copy);
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (unsigned int i = 0; i < len; i++) {
        s += kHex[out[i] >> 4];
        s += kHex[out[i] & 15];
    }
    return s;
}

void digest_file(Digest& d, const std::string& path, uint64_t bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
    std::vector<char> buf(1 << 20);
    while (bytes > 0) {
        const ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(bytes, buf.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : 0;
            ::close(fd);
            throw file_error(path, std::string("read error: ") + (err ? std::strerror(err) : "file shorter than expected"));
        }
        d.update(buf.data(), size_t(n));
        bytes -= uint64_t(n);
    }
    ::close(fd);
}

}  // namespace fdl::hub
