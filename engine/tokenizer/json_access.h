// JSON access for the tokenizer files that never asserts: every problem is an fdl::Error
// naming the file. `where` prefixes a key in messages ("model." names model.vocab), `what`
// names the value itself.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace fdl::tok {

using json = nlohmann::json;

// Largest token id accepted from a file: generous (real vocabularies stay under 300k) but it
// keeps a hostile id from allocating gigabytes.
inline constexpr int64_t kMaxId = (int64_t(1) << 22) - 1;

// Throws file_error(path, problem) with the problem on one line.
[[noreturn]] void fail(const std::string& path, const std::string& problem);

// obj[key] when obj is an object holding a non-null value there, else null.
const json* member(const json& obj, const char* key);
const json& required(const json& obj, const char* key, const std::string& where, const std::string& path);
bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where, const std::string& path);
std::string get_string(const json& v, const std::string& what, const std::string& path);
// A token id in [0, kMaxId].
int32_t get_id(const json& v, const std::string& what, const std::string& path);
// The "type" of a component object; here `where` names the object itself ("normalizer").
std::string type_of(const json& obj, const std::string& where, const std::string& path);

}  // namespace fdl::tok
