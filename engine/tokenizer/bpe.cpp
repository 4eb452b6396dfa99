#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "engine/tokenizer/byte_level.h"

namespace fdl::tok {

void BpeModel::set_vocab(std::vector<std::pair<std::string, int32_t>> entries) {
    vocab.reserve(entries.size());
    int32_t max_id = -1;
    for (auto& [k, id] : entries) {
        max_id = std::max(max_id, id);
        vocab.set(k, id);  // a repeated key keeps its last id, as in a DOM
    }
    entries = {};
    vocab_r.assign(size_t(max_id + 1), std::string_view());
    // When two strings share an id, HF's reverse map keeps one of them; so does this.
    vocab.for_each([&](std::string_view k, int32_t id) {
        if (!vocab_r[size_t(id)].data()) vocab_r[size_t(id)] = k;
    });
    const auto& a = alphabet();
    for (int b = 0; b < 256; ++b) {
        byte_id[size_t(b)] = vocab.get(a.enc[size_t(b)]);
    }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (word.size() == 1 && byte_id[static_cast<unsigned char>(word[0])] >= 0) {
        out.push_back(byte_id[static_cast<unsigned char>(word[0])]);
        return;
    }
    if (word.size() > kCacheWordMax) {
        merge_word(word, out);
        return;
    }
    std::string key(word);
    {
        std::lock_guard<std::mutex> lk(cache_mu_);
        auto it = cache_.find(key);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    size_t before = out.size();
    merge_word(word, out);
    std::vector<int32_t> ids(out.begin() + ptrdiff_t(before), out.end());
    std::lock_guard<std::mutex> lk(cache_mu_);
    if (cache_.size() >= kCacheMax) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
}

void BpeModel::clear_cache() {
    std::lock_guard<std::mutex> lk(cache_mu_);
    cache_.clear();
}

// HF BPE::merge_word + Word::merge_all, on the word's bytes (one byte-level char per byte).
void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
    const auto& a = alphabet();
    if (ignore_merges) {
        std::string bl;
        for (char c : word) bl += a.enc[static_cast<unsigned char>(c)];
        const int32_t id = vocab.get(bl);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    struct Sym {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    std::vector<Sym> syms;
    syms.reserve(word.size());
    auto add = [&](int32_t id) {
        int32_t n = int32_t(syms.size());
        syms.push_back({id, n - 1, -1, true});
        if (n > 0) syms[size_t(n - 1)].next = n;
    };
    bool pending_unk = false;
    for (char c : word) {
        const unsigned char b = static_cast<unsigned char>(c);
        if (byte_id[b] >= 0) {
            if (pending_unk) add(unk_id), pending_unk = false;
            add(byte_id[b]);
            continue;
        }
        if (byte_fallback) {
            bool all = true;
            std::vector<int32_t> fb;
            for (char x : a.enc[b]) {
                char name[8];
                std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(x));
                const int32_t id = vocab.get(name);
                if (id < 0) {
                    all = false;
                    break;
                }
                fb.push_back(id);
            }
            if (all) {
                if (pending_unk) add(unk_id), pending_unk = false;
                for (int32_t id : fb) add(id);
                continue;
            }
        }
        if (unk_id >= 0) {
            if (pending_unk && !fuse_unk) add(unk_id);
            pending_unk = true;
        }
    }
    if (pending_unk) add(unk_id);
    if (syms.empty()) return;

    struct Cand {
        int32_t rank, pos, new_id;
    };
    auto lower = [](const Cand& x, const Cand& y) {  // true when x pops after y
        return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(lower)> queue(lower);
    auto lookup = [&](int32_t l, int32_t r) -> const Merge* {
        return merges.find(pair_key(l, r));
    };
    for (size_t i = 0; i + 1 < syms.size(); ++i)
        if (const Merge* m = lookup(syms[i].id, syms[i + 1].id)) queue.push({m->rank, int32_t(i), m->new_id});

    while (!queue.empty()) {
        Cand top = queue.top();
        queue.pop();
        Sym& cur = syms[size_t(top.pos)];
        if (!cur.alive || cur.next < 0) continue;
        const int32_t next_pos = cur.next;
        const Sym right = syms[size_t(next_pos)];
        const Merge* m = lookup(cur.id, right.id);
        if (!m || m->new_id != top.new_id) continue;  // stale entry
        cur.id = top.new_id;
        cur.next = right.next;
        syms[size_t(next_pos)].alive = false;
        if (right.next >= 0) syms[size_t(right.next)].prev = top.pos;
        if (cur.prev >= 0)
            if (const Merge* pm = lookup(syms[size_t(cur.prev)].id, cur.id))
                queue.push({pm->rank, cur.prev, pm->new_id});
        if (cur.next >= 0)
            if (const Merge* nm = lookup(cur.id, syms[size_t(cur.next)].id))
                queue.push({nm->rank, top.pos, nm->new_id});
    }
    for (const Sym& s : syms)
        if (s.alive) out.push_back(s.id);
}

}  // namespace fdl::tok
