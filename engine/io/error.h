// One exception type for everything that reads outside data or gets a bad request.
// The message is a single line meant for the user: "<file>: <problem>".
#pragma once
#include <stdexcept>
#include <string>

namespace fdl {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Formats "file: problem" (or just "problem" when file is empty).
inline Error file_error(const std::string& file, const std::string& problem) {
    return Error(file.empty() ? problem : file + ": " + problem);
}

}  // namespace fdl
