// The normalizer stage: Unicode normal forms (utf8proc) applied in order.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace fdl::tok {

class Normalizer {
public:
    // Appends the normal form that a tokenizer.json normalizer type names ("NFC", "NFD",
    // "NFKC" or "NFKD"); false for any other type.
    bool add(const std::string& type);
    std::string apply(std::string_view s) const;

private:
    std::vector<int> forms_;  // utf8proc option sets applied in order (empty: none)
};

}  // namespace fdl::tok
