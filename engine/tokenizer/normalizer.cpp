#include "engine/tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

namespace fdl::tok {

bool Normalizer::add(const std::string& type) {
    if (type == "NFC") {
        forms_.push_back(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    } else if (type == "NFD") {
        forms_.push_back(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    } else if (type == "NFKC") {
        forms_.push_back(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    } else if (type == "NFKD") {
        forms_.push_back(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    } else {
        return false;
    }
    return true;
}

std::string Normalizer::apply(std::string_view s) const {
    if (forms_.empty()) return std::string(s);
    bool ascii = true;
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) {
            ascii = false;
            break;
        }
    if (ascii) return std::string(s);  // every normal form of ASCII is itself
    std::string cur(s);
    for (int opts : forms_) {
        utf8proc_uint8_t* dst = nullptr;
        utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(cur.data()),
                                          utf8proc_ssize_t(cur.size()), &dst, utf8proc_option_t(opts));
        if (n >= 0 && dst) cur.assign(reinterpret_cast<const char*>(dst), size_t(n));
        std::free(dst);
    }
    return cur;
}

}  // namespace fdl::tok
