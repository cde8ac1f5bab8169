#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
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
    // Where `find` left a key: the seq holding it (0: none yet), else the slot it would take.
    struct Place {
        uint32_t held = 0;
        size_t slot = 0;
        uint32_t fingerprint = 0;
    };

    // Looks `key` up; `key_of(seq)` reads a candidate's key back. Grows the table first, so the
    // place stays valid for `add` as long as nothing is added in between.
    template <typename KeyOf>
    Place find(std::string_view key, const KeyOf& key_of) {
        if ((count_ + 1) * 10 > slots_.size() * 7) grow();
        // The upper half of the hash. It also picks the slot (so growing reads no key back):
        // keys that share a home slot share its low bits, and the rest tell them apart.
        static_assert(sizeof(size_t) == 8, "the fingerprint is the upper half of a 64-bit hash");
        const auto fingerprint = static_cast<uint32_t>(std::hash<std::string_view>{}(key) >> 32);
        for (size_t at = fingerprint & (slots_.size() - 1);; at = (at + 1) & (slots_.size() - 1)) {
            const uint32_t held = slots_[at];
            if (held == 0) return {0, at, fingerprint};
            if (fingerprints_[held] == fingerprint && key_of(held) == key) return {held, at, fingerprint};
        }
    }

    // Records the key `find` did not find under `seq`, once it is stored where key_of reads it
    // (a key recorded for a row that failed to be written would shadow the next copy of it).
    // Seqs grow with each member added: a run's seqs, 1 .. 2^32 - 1.
    void add(const Place& place, uint32_t seq) {
        if (place.held != 0 || slots_[place.slot] != 0 || seq < fingerprints_.size()) {
            throw std::logic_error("StagedKeys::add: not the free place of a new, higher seq");
        }
        fingerprints_.resize(seq + size_t{1});
        fingerprints_[seq] = place.fingerprint;
        slots_[place.slot] = seq;
        ++count_;
    }

    void clear() {
        slots_.assign(1024, 0);
        fingerprints_.clear();
        count_ = 0;
    }

    // Gives the memory back (12 bytes a member) once no more keys come; `clear` before reuse.
    void release() {
        std::vector<uint32_t>().swap(slots_);
        std::vector<uint32_t>().swap(fingerprints_);
        count_ = 0;
    }

private:
    // Doubles the table; a seq's place comes from its fingerprint, so no key is read.
    void grow() {
        std::vector<uint32_t> old(std::max<size_t>(slots_.size() * 2, 1024), 0);
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
