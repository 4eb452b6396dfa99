#include "engine/tokenizer/json_access.h"

#include <algorithm>

#include "engine/io/error.h"

namespace fdl::tok {

namespace {

std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

}  // namespace

void fail(const std::string& path, const std::string& problem) { throw file_error(path, one_line(problem)); }

const json* member(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

const json& required(const json& obj, const char* key, const std::string& where, const std::string& path) {
    const json* v = member(obj, key);
    if (!v) fail(path, "missing \"" + where + key + "\"");
    return *v;
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where, const std::string& path) {
    const json* v = member(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(path, "\"" + where + key + "\" must be true or false");
    return v->get<bool>();
}

std::string get_string(const json& v, const std::string& what, const std::string& path) {
    if (!v.is_string()) fail(path, what + " must be a string");
    return v.get<std::string>();
}

int32_t get_id(const json& v, const std::string& what, const std::string& path) {
    if (!v.is_number_integer()) fail(path, what + " must be an integer id");
    int64_t id = v.is_number_unsigned() ? int64_t(std::min<uint64_t>(v.get<uint64_t>(), uint64_t(kMaxId) + 1))
                                        : v.get<int64_t>();
    if (id < 0 || id > kMaxId) fail(path, what + " = " + v.dump() + " is out of range");
    return int32_t(id);
}

std::string type_of(const json& obj, const std::string& where, const std::string& path) {
    if (!obj.is_object()) fail(path, "\"" + where + "\" must be an object");
    return get_string(required(obj, "type", where + ".", path), "\"" + where + ".type\"", path);
}

}  // namespace fdl::tok
