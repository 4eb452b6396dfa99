#include "engine/tokenizer/added_tokens.h"

#include <algorithm>
#include <utility>

namespace fdl::tok {

void LiteralMatcher::build(std::vector<Pat> p) {
    pats = std::move(p);
    for (auto& v : by_first) v.clear();
    for (uint32_t i = 0; i < pats.size(); ++i)
        if (!pats[i].text.empty()) by_first[static_cast<unsigned char>(pats[i].text[0])].push_back(i);
    for (auto& v : by_first)
        std::stable_sort(v.begin(), v.end(),
                         [&](uint32_t a, uint32_t b) { return pats[a].text.size() > pats[b].text.size(); });
}

void AddedVocabulary::add(AddedToken t) {
    if (t.id >= int32_t(index.size())) index.resize(size_t(t.id) + 1, -1);
    int32_t prev = index[size_t(t.id)];
    if (prev >= 0) {
        // Same id listed again: the later entry replaces the earlier one.
        auto it = by_content.find(tokens[size_t(prev)].content);
        if (it != by_content.end() && it->second == t.id) by_content.erase(it);
        by_content[t.content] = t.id;
        tokens[size_t(prev)] = std::move(t);
    } else {
        by_content[t.content] = t.id;
        index[size_t(t.id)] = int32_t(tokens.size());
        tokens.push_back(std::move(t));
    }
}

void AddedVocabulary::build_matchers(const Normalizer& normalizer) {
    std::vector<LiteralMatcher::Pat> raw, norm;
    for (size_t i = 0; i < tokens.size(); ++i) {
        const AddedToken& t = tokens[i];
        if (by_content.count(t.content) == 0 || by_content[t.content] != t.id) continue;
        if (t.normalized) {
            std::string c = normalizer.apply(t.content);
            if (!c.empty()) norm.push_back({std::move(c), i});
        } else {
            raw.push_back({t.content, i});
        }
    }
    raw_matcher.build(std::move(raw));
    norm_matcher.build(std::move(norm));
}

}  // namespace fdl::tok
