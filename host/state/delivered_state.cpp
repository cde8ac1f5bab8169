#include "state/delivered_state.hpp"

namespace segpush {

DeliveryBatch::Piece DeliveryBatch::keep(std::string_view text) {
    const Piece piece{bytes_.size(), text.size()};
    bytes_.append(text);
    return piece;
}

void DeliveryBatch::deliver(std::string_view key, std::string_view key_value, uint64_t hash, bool removed,
                            bool removed_by_us, std::string_view sent_values) {
    const Piece kept_key = keep(key);
    // A key as written equal to the key is stored once.
    const Piece kept_value = key_value.empty() || key_value == key ? kept_key : keep(key_value);
    const Piece kept_values = removed ? Piece{} : keep(sent_values);
    delivered_.push_back({kept_key, kept_value, kept_values, hash, removed, removed && removed_by_us});
}

void DeliveryBatch::forget_removal(std::string_view key) { forgotten_removals_.push_back(keep(key)); }

void DeliveryBatch::refuse(std::string_view key, uint64_t hash, int64_t refusals) {
    refused_.push_back({keep(key), hash, refusals});
}

void DeliveryBatch::forget_refusal(std::string_view key) { forgotten_refusals_.push_back(keep(key)); }

void DeliveryBatch::add_receipt(std::string_view receipt, int64_t first_seq, int64_t last_seq,
                                std::string_view members) {
    receipts_.push_back({keep(receipt), keep(members), first_seq, last_seq});
}

DeliveryBatch::Member DeliveryBatch::delivered(size_t i) const {
    const StoredMember& member = delivered_[i];
    return {text(member.key), text(member.key_value), member.hash,
            member.removed,   member.removed_by_us,   text(member.sent_values)};
}

RefusedMember DeliveryBatch::refused(size_t i) const {
    const StoredRefusal& refusal = refused_[i];
    return {text(refusal.key), refusal.hash, refusal.refusals, 0};
}

DeliveryBatch::Receipt DeliveryBatch::receipt(size_t i) const {
    const StoredReceipt& receipt = receipts_[i];
    return {text(receipt.receipt), receipt.first_seq, receipt.last_seq, text(receipt.members)};
}

bool DeliveryBatch::empty() const {
    return delivered_.empty() && forgotten_removals_.empty() && refused_.empty() && forgotten_refusals_.empty() &&
           receipts_.empty() && receipts_confirmed.empty() && receipts_forgotten.empty() && !settles_run;
}

}  // namespace segpush
