#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace segpush {

// The members of a receipt as the delivered state stores them, one after another: for each,
// its hash (8 bytes), its key's length (4 bytes), both little endian, and the key. When the
// key as written differs from the key (an email with capitals), the length's top bit is set
// and the key as written follows, its length first (4 bytes). When the member's values are
// kept (the values sent, which become its delivered values once the receipt is confirmed), the
// next bit is set and they follow last, their length first (4 bytes); lists written before
// values were kept have neither bit. A backend stores these bytes as they are: a run that
// stops is followed by one that finds the members by key and hash.
constexpr uint32_t kReceiptKeyValueFollows = 0x80000000u;
constexpr uint32_t kReceiptValuesFollow = 0x40000000u;

inline void encode_receipt_member(std::string& out, uint64_t hash, std::string_view key, std::string_view key_value,
                                  std::string_view values = {}) {
    auto put_length = [&](uint32_t length) {
        for (int byte = 0; byte < 4; ++byte) out.push_back(static_cast<char>(length >> (8 * byte)));
    };
    for (int byte = 0; byte < 8; ++byte) out.push_back(static_cast<char>(hash >> (8 * byte)));
    const bool differs = !key_value.empty() && key_value != key;
    put_length(static_cast<uint32_t>(key.size()) | (differs ? kReceiptKeyValueFollows : 0) |
               (values.empty() ? 0 : kReceiptValuesFollow));
    out.append(key);
    if (differs) {
        put_length(static_cast<uint32_t>(key_value.size()));
        out.append(key_value);
    }
    if (values.empty()) return;
    put_length(static_cast<uint32_t>(values.size()));
    out.append(values);
}

// Calls visit(hash, key, key_value, values) for each member (values empty when none were
// kept); a torn list yields the members before the tear.
template <typename Visit>
void decode_receipt_members(std::string_view in, const Visit& visit) {
    auto take = [&](int bytes) {
        uint64_t value = 0;
        for (int byte = 0; byte < bytes; ++byte) value |= uint64_t{static_cast<unsigned char>(in[byte])} << (8 * byte);
        in.remove_prefix(bytes);
        return value;
    };
    while (in.size() >= 12) {
        const uint64_t hash = take(8);
        const auto length_and_flag = static_cast<uint32_t>(take(4));
        const size_t length = length_and_flag & ~(kReceiptKeyValueFollows | kReceiptValuesFollow);
        if (length > in.size()) break;
        const std::string_view key = in.substr(0, length);
        in.remove_prefix(length);
        std::string_view key_value = key;
        if (length_and_flag & kReceiptKeyValueFollows) {
            if (in.size() < 4) break;
            const auto value_length = static_cast<size_t>(take(4));
            if (value_length > in.size()) break;
            key_value = in.substr(0, value_length);
            in.remove_prefix(value_length);
        }
        std::string_view values;
        if (length_and_flag & kReceiptValuesFollow) {
            if (in.size() < 4) break;
            const auto values_length = static_cast<size_t>(take(4));
            if (values_length > in.size()) break;
            values = in.substr(0, values_length);
            in.remove_prefix(values_length);
        }
        visit(hash, key, key_value, values);
    }
}

// `members` without the members whose key is in `keys` (forgetting people); `dropped` counts
// those left out.
inline std::string receipt_members_without(std::string_view members, const std::set<std::string>& keys,
                                           int64_t& dropped) {
    std::string kept;
    decode_receipt_members(members, [&](uint64_t hash, std::string_view key, std::string_view value,
                                        std::string_view sent_values) {
        if (keys.count(std::string(key))) {
            ++dropped;
        } else {
            encode_receipt_member(kept, hash, key, value, sent_values);
        }
    });
    return kept;
}

}  // namespace segpush
