// The two hash maps behind the BPE model: token string -> id and pair of ids -> merge.
// Open addressing with linear probing; built once at load time, then only read.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fdl::tok {

struct Merge {
    int32_t rank;
    int32_t new_id;
};

inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Open-addressing map from token strings to ids. The keys live in one arena, so loading 151k
// tokens costs no allocation per token and a lookup touches one slot plus the key's bytes.
class TokenMap {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    int32_t get(std::string_view k) const {
        if (slots_.empty()) return -1;
        const uint64_t h = hash(k);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            const Slot& sl = slots_[i];
            if (sl.id < 0) return -1;
            if (sl.tag == tag && sl.len == k.size() && std::memcmp(arena_.data() + sl.off, k.data(), k.size()) == 0)
                return sl.id;
        }
    }
    bool contains(std::string_view k) const { return get(k) >= 0; }
    // Inserts or replaces. Invalidates views returned by for_each.
    void set(std::string_view k, int32_t id) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        const uint64_t h = hash(k);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            Slot& sl = slots_[i];
            if (sl.id < 0) {
                sl = Slot{uint32_t(arena_.size()), uint32_t(k.size()), id, tag};
                arena_.append(k.data(), k.size());
                ++count_;
                return;
            }
            if (sl.tag == tag && sl.len == k.size() && std::memcmp(arena_.data() + sl.off, k.data(), k.size()) == 0) {
                sl.id = id;
                return;
            }
        }
    }
    size_t size() const { return count_; }
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& sl : slots_)
            if (sl.id >= 0) f(std::string_view(arena_.data() + sl.off, sl.len), sl.id);
    }

private:
    struct Slot {
        uint32_t off, len;
        int32_t id;  // -1: empty
        uint32_t tag;
    };
    static uint64_t hash(std::string_view k) { return std::hash<std::string_view>{}(k); }
    void rehash(size_t cap) {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(cap, Slot{0, 0, -1, 0});
        mask_ = cap - 1;
        for (const Slot& sl : old) {
            if (sl.id < 0) continue;
            const uint64_t h = hash(std::string_view(arena_.data() + sl.off, sl.len));
            size_t i = size_t(h) & mask_;
            while (slots_[i].id >= 0) i = (i + 1) & mask_;
            slots_[i] = sl;
        }
    }
    std::string arena_;
    std::vector<Slot> slots_;
    size_t mask_ = 0, count_ = 0;
};

// Open-addressing map from a pair of ids to its merge.
class MergeMap {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    const Merge* find(uint64_t key) const {
        if (slots_.empty()) return nullptr;
        for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
            const Slot& sl = slots_[i];
            if (sl.key == key) return &sl.m;
            if (sl.key == kEmpty) return nullptr;
        }
    }
    void set(uint64_t key, Merge m) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
            Slot& sl = slots_[i];
            if (sl.key == key) {
                sl.m = m;
                return;
            }
            if (sl.key == kEmpty) {
                sl = Slot{key, m};
                ++count_;
                return;
            }
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are < 2^22, so no pair is this
    struct Slot {
        uint64_t key;
        Merge m;
    };
    static size_t mix(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        return size_t(k);
    }
    void rehash(size_t cap) {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(cap, Slot{kEmpty, Merge{0, 0}});
        mask_ = cap - 1;
        for (const Slot& sl : old) {
            if (sl.key == kEmpty) continue;
            size_t i = mix(sl.key) & mask_;
            while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
            slots_[i] = sl;
        }
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0, count_ = 0;
};

}  // namespace fdl::tok
