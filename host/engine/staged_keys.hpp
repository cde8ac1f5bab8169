#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace segpush {

// The members staged so far by a run, by key: which seq holds a given key. Not SQLite's
// unique index: it costs a random B-tree insert per member, spilled to the TEMP file past its
// cache. Here: open-addressing tables of seqs (linear probing, each at most 70 % full) and,
// by seq, a 32-bit fingerprint of each key's hash; the keys themselves stay in the staged
// file, and `key_of(seq)` reads one back only when a fingerprint matches. About 12 bytes a
// member.
//
// The table is 64 shards that grow one at a time, and the fingerprints are kept in chunks of
// 65,536, so growing never holds old and new copies of the whole: one table doubling, or one
// vector of fingerprints, would hold both at once and set the heap's high-water mark for a
// large export.
class StagedKeys {
public:
    // Where `find` left a key: the seq holding it (0: none yet), else the slot it would take
    // in the shard the fingerprint picks.
    struct Place {
        uint32_t held = 0;
        size_t slot = 0;
        uint32_t fingerprint = 0;
    };

    // Looks `key` up; `key_of(seq)` reads a candidate's key back. Grows the shard first, so the
    // place stays valid for `add` as long as nothing is added in between.
    template <typename KeyOf>
    Place find(std::string_view key, const KeyOf& key_of) {
        // The upper half of the hash: its low bits pick the shard, the next ones the slot (so
        // growing reads no key back); keys that share a home slot share those bits, and the
        // rest tell them apart.
        static_assert(sizeof(size_t) == 8, "the fingerprint is the upper half of a 64-bit hash");
        const auto fingerprint = static_cast<uint32_t>(std::hash<std::string_view>{}(key) >> 32);
        Shard& shard = shards_[fingerprint & (kShards - 1)];
        if ((shard.count + 1) * 10 > shard.slots.size() * 7) grow(shard);
        const size_t mask = shard.slots.size() - 1;
        for (size_t at = home(fingerprint) & mask;; at = (at + 1) & mask) {
            const uint32_t held = shard.slots[at];
            if (held == 0) return {0, at, fingerprint};
            if (fingerprint_of(held) == fingerprint && key_of(held) == key) return {held, at, fingerprint};
        }
    }

    // Records the key `find` did not find under `seq`, once it is stored where key_of reads it
    // (a key recorded for a row that failed to be written would shadow the next copy of it).
    // Seqs grow with each member added: a run's seqs, 1 .. 2^32 - 1.
    void add(const Place& place, uint32_t seq) {
        Shard& shard = shards_[place.fingerprint & (kShards - 1)];
        if (place.held != 0 || place.slot >= shard.slots.size() || shard.slots[place.slot] != 0 || seq <= last_seq_) {
            throw std::logic_error("StagedKeys::add: not the free place of a new, higher seq");
        }
        while (chunks_.size() <= seq / kChunk) chunks_.push_back(std::make_unique<uint32_t[]>(kChunk));
        chunks_[seq / kChunk][seq % kChunk] = place.fingerprint;
        shard.slots[place.slot] = seq;
        ++shard.count;
        last_seq_ = seq;
    }

    void clear() {
        for (Shard& shard : shards_) shard = Shard();
        chunks_.clear();
        last_seq_ = 0;
    }

    // Gives the memory back (12 bytes a member) once no more keys come; `clear` before reuse.
    void release() {
        for (Shard& shard : shards_) {
            std::vector<uint32_t>().swap(shard.slots);
            shard.count = 0;
        }
        std::vector<std::unique_ptr<uint32_t[]>>().swap(chunks_);
        last_seq_ = 0;
    }

private:
    static constexpr size_t kShards = 64;
    static constexpr size_t kChunk = size_t{1} << 16;
    struct Shard {
        std::vector<uint32_t> slots = std::vector<uint32_t>(16, 0);
        size_t count = 0;
    };

    static size_t home(uint32_t fingerprint) { return fingerprint / kShards; }
    uint32_t fingerprint_of(uint32_t seq) const { return chunks_[seq / kChunk][seq % kChunk]; }

    // Doubles the shard; a seq's place comes from its fingerprint, so no key is read.
    void grow(Shard& shard) {
        std::vector<uint32_t> old(std::max<size_t>(shard.slots.size() * 2, 16), 0);
        old.swap(shard.slots);
        const size_t mask = shard.slots.size() - 1;
        for (const uint32_t seq : old) {
            if (seq == 0) continue;
            size_t at = home(fingerprint_of(seq)) & mask;
            while (shard.slots[at] != 0) at = (at + 1) & mask;
            shard.slots[at] = seq;
        }
    }

    std::array<Shard, kShards> shards_;
    std::vector<std::unique_ptr<uint32_t[]>> chunks_;  // fingerprints by seq; [0][0] unused
    uint32_t last_seq_ = 0;
};

}  // namespace segpush
