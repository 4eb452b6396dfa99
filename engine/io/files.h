// Reading and writing whole files, and JSON with errors that name the file. Every reader of
// outside data goes through these, so a bad file always gives the same one-line message.
#pragma once
#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace fdl {

// The whole file. Throws fdl::Error("<path>: cannot open: <reason>") (or "is a directory, not a
// file", "read error").
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);  // anything is there (a folder too: reading it then says so)

// Parses JSON text; throws fdl::Error("<file>: invalid JSON: <parser's message>").
nlohmann::json parse_json(std::string_view text, const std::string& file);
nlohmann::json read_json_file(const std::string& path);

// A file written in pieces that appears whole or not at all: the data goes to a temporary file
// beside `path`, which commit() flushes to disk (fsync) and renames over `path`. Destroyed
// without commit() (an error on the way), the temporary file is removed.
class AtomicFile {
public:
    explicit AtomicFile(const std::string& path);  // throws fdl::Error when it cannot be created
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    void write(const void* data, size_t n);  // throws fdl::Error (disk full, ...)
    void commit();

private:
    std::string path_, tmp_;
    int fd_ = -1;
};

// Writes `text` to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace fdl
