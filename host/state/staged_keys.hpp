#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace segpush {

// The members staged so far by a run, by key: which seq holds a given email. Eight bytes a
// slot, 1.4 to 2.9 slots a member (a 32-bit fingerprint of the key's hash and the 32-bit seq, linear probing from the
// fingerprint, at most 70 % full), where SQLite's unique index cost a random B-tree insert per member, spilled to
// the TEMP file past its cache (1.3 CPU s per million members). The table does not keep the
// keys: when a fingerprint matches, `key_of(seq)` says whether the key really is the same.
class StagedKeys {
public:
    // The seq already holding `key`, or 0 after recording it under `seq` (1 .. 2^32 - 1).
    template <typename KeyOf>
    uint32_t find_or_add(std::string_view key, uint32_t seq, const KeyOf& key_of) {
        if ((count_ + 1) * 10 > slots_.size() * 7) grow();
        const uint64_t fingerprint = std::hash<std::string_view>{}(key) >> 32;
        for (size_t at = fingerprint & (slots_.size() - 1);; at = (at + 1) & (slots_.size() - 1)) {
            const uint64_t slot = slots_[at];
            if (slot == 0) {
                slots_[at] = fingerprint << 32 | seq;
                ++count_;
                return 0;
            }
            if (slot >> 32 == fingerprint && key_of(static_cast<uint32_t>(slot)) == key) {
                return static_cast<uint32_t>(slot);
            }
        }
    }

    void clear() {
        slots_.assign(1024, 0);
        count_ = 0;
    }

private:
    // Doubles the table; a slot's place comes from its fingerprint alone, so the slots can be
    // placed again without their keys.
    void grow() {
        std::vector<uint64_t> old(slots_.size() * 2, 0);
        old.swap(slots_);
        for (const uint64_t slot : old) {
            if (slot == 0) continue;
            size_t at = (slot >> 32) & (slots_.size() - 1);
            while (slots_[at] != 0) at = (at + 1) & (slots_.size() - 1);
            slots_[at] = slot;
        }
    }

    std::vector<uint64_t> slots_ = std::vector<uint64_t>(1024, 0);
    size_t count_ = 0;
};

}  // namespace segpush
