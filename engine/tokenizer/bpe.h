// The byte-level BPE model: vocab and merges tables, and the merge loop that turns one word's
// bytes into ids exactly like HF's Word::merge_all (a heap ordered by rank, then position).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tokenizer/hash_maps.h"

namespace fdl::tok {

class BpeModel {
public:
    TokenMap vocab;                         // frozen once loaded
    std::vector<std::string_view> vocab_r;  // id -> its key in `vocab`; data() null when none
    MergeMap merges;
    std::array<int32_t, 256> byte_id{};  // byte -> id of its byte-level char, -1 if missing
    int32_t unk_id = -1;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;

    // Fills vocab, vocab_r and byte_id from (token, id) entries.
    void set_vocab(std::vector<std::pair<std::string, int32_t>> entries);
    // Appends the ids of one pre-tokenized word. Thread-safe.
    void encode_word(std::string_view word, std::vector<int32_t>& out) const;
    void clear_cache();

private:
    void merge_word(std::string_view word, std::vector<int32_t>& out) const;

    // Cache of BPE results per word (bytes). Shared by threads.
    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
    static constexpr size_t kCacheMax = 1 << 17;
    static constexpr size_t kCacheWordMax = 128;
};

}  // namespace fdl::tok
