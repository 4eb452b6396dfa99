// The checksums the hub lists for a file: the SHA-256 of an LFS file, and the git blob id
// (SHA-1 of "blob SIZE\0" and the content) of a file kept in git itself. OpenSSL computes both.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace fdl::hub {

class Digest {
public:
    enum class Kind { Sha256, GitBlobSha1 };
    // `size`: the whole file's size, which the git blob header starts with.
    Digest(Kind kind, uint64_t size);
    ~Digest();
    Digest(const Digest&) = delete;
    Digest& operator=(const Digest&) = delete;
    void reset();  // back to no data
    void update(const void* data, size_t n);
    std::string hex();  // the digest of the data so far, lowercase hex (the state is kept)
    Kind kind() const { return kind_; }

private:
    Kind kind_;
    uint64_t size_;
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

// The digest of a file's first `bytes` bytes, added to `d`. Throws fdl::Error on a read error.
void digest_file(Digest& d, const std::string& path, uint64_t bytes);

}  // namespace fdl::hub
