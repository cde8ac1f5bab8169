#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace segpush {

// The members staged so far by a run, by key: which seq holds a given email. SQLite's unique
// index did this at the cost of a random B-tree insert per member, spilled to the TEMP file
// past its cache (1.3 CPU s per million members). Here: an open-addressing table of seqs
// (linear probing, at most 70 % full) and, by seq, a 32-bit fingerprint of each key's hash;
// the keys themselves stay in the staged rows, and `key_of(seq)` reads one back only when a
// fingerprint matches. About 12 bytes a member; the two arrays grow at different times, so
// a million members never hold more than 16 MiB even while one of them is being copied.
class StagedKeys {
public:
    // The seq already holding `key`, or 0 after recording it under `seq` (1 .. 2^32 - 1, growing
    // with each member added: a run's seqs).
    template <typename KeyOf>
    uint32_t find_or_add(std::string_view key, uint32_t seq, const KeyOf& key_of) {
        if ((count_ + 1) * 10 > slots_.size() * 7) grow();
        const auto fingerprint = static_cast<uint32_t>(std::hash<std::string_view>{}(key) >> 32);
        for (size_t at = fingerprint & (slots_.size() - 1);; at = (at + 1) & (slots_.size() - 1)) {
            const uint32_t held = slots_[at];
            if (held == 0) {
                slots_[at] = seq;
                fingerprints_.resize(seq + size_t{1});
                fingerprints_[seq] = fingerprint;
                ++count_;
                return 0;
            }
            if (fingerprints_[held] == fingerprint && key_of(held) == key) return held;
        }
    }

    void clear() {
        slots_.assign(1024, 0);
        fingerprints_.clear();
        count_ = 0;
    }

private:
    // Doubles the table; a seq's place comes from its fingerprint, so no key is read.
    void grow() {
        std::vector<uint32_t> old(slots_.size() * 2, 0);
        old.swap(slots_);
        for (const uint32_t seq : old) {
            if (seq == 0) continue;
            size_t at = fingerprints_[seq] & (slots_.size() - 1);
            while (slots_[at] != 0) at = (at + 1) & (slots_.size() - 1);
            slots_[at] = seq;
        }
    }

    std::vector<uint32_t> slots_ = std::vector<uint32_t>(1024, 0);
    std::vector<uint32_t> fingerprints_;  // by seq; [0] unused
    size_t count_ = 0;
};

}  // namespace segpush
