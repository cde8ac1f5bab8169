#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace segpush {

// A member as the delivered state records it: its key (engine/member_key.hpp: an email case-folded), the
// key as the segment wrote it, the hash of the values the destination last accepted, the run
// that delivered them, and the values themselves as the engine encoded them (empty: not
// recorded, for members delivered by a segpush that kept only the hash). The values are
// personal data: forgetting a member erases them with the rest of its record.
struct DeliveredMember {
    std::string_view key;
    std::string_view key_value;
    uint64_t hash = 0;
    int64_t run_id = 0;
    std::string_view sent_values;
};

// A member whose values the destination refused, as the delivered state records it: its key,
// the hash of the values refused, how many runs in a row refused those values, and the run
// that last refused them.
struct RefusedMember {
    std::string_view key;
    uint64_t hash = 0;
    int64_t refusals = 0;
    int64_t run_id = 0;
};

// What one batch of outcomes changes in the delivered state, written in one transaction by
// DeliveredState::record. It owns its bytes: the members it names are copied in.
class DeliveryBatch {
public:
    struct Member {
        std::string_view key;
        std::string_view key_value;
        uint64_t hash = 0;
        bool removed = false;          // a leaver the destination no longer holds
        bool removed_by_us = false;    // ...and segpush removed it (a removal to remember)
        std::string_view sent_values;  // empty: none recorded (always so for a removed member)
    };
    struct Receipt {
        std::string_view receipt;  // what the plugin gave to find the import again
        int64_t first_seq = 0;     // the lowest and highest seq of its members in the run
        int64_t last_seq = 0;
        std::string_view members;  // its members' keys and hashes (receipt_members.hpp)
    };

    // The destination now holds the member with these values (or, `removed`, no longer holds it);
    // `sent_values`, the values encoded (kept only for a member not removed; empty: none).
    void deliver(std::string_view key, std::string_view key_value, uint64_t hash, bool removed, bool removed_by_us,
                 std::string_view sent_values = {});
    // The member is on the destination's books again, or kept out by it: a removal by segpush
    // recorded earlier is history.
    void forget_removal(std::string_view key);
    // The destination refused the member's values (`hash`), `refusals` runs in a row: replaces
    // what was recorded of the member's refusals.
    void refuse(std::string_view key, uint64_t hash, int64_t refusals);
    // The member is no longer refused (accepted, kept out, or gone from the segment). Applied
    // before the batch's refusals.
    void forget_refusal(std::string_view key);
    // An import the destination will confirm later; record() returns its id.
    void add_receipt(std::string_view receipt, int64_t first_seq, int64_t last_seq, std::string_view members);

    // Receipts recorded earlier, by id: every member they held was accepted with them (kept,
    // confirmed, as those members' delivery), or they hold no member any more (forgotten).
    std::vector<int64_t> receipts_confirmed;
    std::vector<int64_t> receipts_forgotten;
    // finish_export settled the run: none of its receipts waits any more.
    bool settles_run = false;

    size_t delivered_count() const { return delivered_.size(); }
    Member delivered(size_t i) const;
    size_t removals_forgotten_count() const { return forgotten_removals_.size(); }
    std::string_view removal_forgotten(size_t i) const { return text(forgotten_removals_[i]); }
    size_t refused_count() const { return refused_.size(); }
    RefusedMember refused(size_t i) const;  // run_id 0: it is the recording run's
    size_t refusals_forgotten_count() const { return forgotten_refusals_.size(); }
    std::string_view refusal_forgotten(size_t i) const { return text(forgotten_refusals_[i]); }
    size_t receipt_count() const { return receipts_.size(); }
    Receipt receipt(size_t i) const;
    bool empty() const;

private:
    // Pieces of bytes_, by where they start and how long they are: views into a string that
    // grows would not stay valid, and a string a member would be an allocation each.
    struct Piece {
        size_t at = 0, size = 0;
    };
    Piece keep(std::string_view text);
    std::string_view text(Piece piece) const { return std::string_view(bytes_).substr(piece.at, piece.size); }
    struct StoredMember {
        Piece key, key_value, sent_values;
        uint64_t hash;
        bool removed, removed_by_us;
    };
    struct StoredRefusal {
        Piece key;
        uint64_t hash;
        int64_t refusals;
    };
    struct StoredReceipt {
        Piece receipt, members;
        int64_t first_seq, last_seq;
    };
    std::string bytes_;
    std::vector<StoredMember> delivered_;
    std::vector<Piece> forgotten_removals_;
    std::vector<StoredRefusal> refused_;
    std::vector<Piece> forgotten_refusals_;
    std::vector<StoredReceipt> receipts_;
};

// The durable state of an export's members: what the destination holds as far as segpush
// knows (the delivered members and their values' hashes), the members segpush itself removed,
// the members the destination refused (with the hash of the values it refused), and the
// receipts of imports the destination has yet to confirm. It is also the checkpoint:
// every batch of outcomes is recorded in one transaction, so a run that stops, however it
// stops, is followed by one that sends only what was not confirmed. The engine sees only
// this; SqliteDeliveredState is the embedded backend.
//
// What every backend guarantees:
// - record() is atomic: a batch is all recorded or, when it throws, none of it.
// - visit_delivered() sees every batch recorded before it, members in ascending key order,
//   keys compared byte by byte (as memcmp does; PostgreSQL: COLLATE "C"), each key once.
//   Between two visits of an export, its batches are one run's, which records each key once
//   (delivered, removed, or confirmed with a receipt): a backend may fold its records at the
//   next visit without ordering records of one key.
// - visit_refused() sees each refused key once, with the refusal last recorded for it, in no
//   particular order; a forgotten refusal is no longer seen.
// - A member's sent values come back byte for byte as its latest delivery recorded them (or
//   as the receipt members that confirmed it held them: receipt_members.hpp), empty when that
//   delivery recorded none. Rows written before a backend kept values read as empty.
// - A receipt's id is unique among the receipts still recorded; its members come back byte
//   for byte as they were recorded.
// - Keys, keys as written, receipts and receipts' members are bytes, and come back as they were
//   stored: never case-folded, collated or checked as UTF-8 by the backend (they may hold any
//   byte, NUL included; PostgreSQL: bytea).
// - A visit's callback never calls back into the same DeliveredState (a backend may hold a
//   cursor open on its connection for the visit's length).
// The engine runs at most one run of an export at a time (RunHistory's claim), so the calls
// for one export never overlap.
class DeliveredState {
public:
    virtual ~DeliveredState() = default;

    // True when nothing is recorded for the export: no member delivered, none awaiting
    // confirmation, none removed, none refused. Its next run needs no diff.
    virtual bool nothing_recorded(const std::string& export_name) = 0;
    // The export's delivered members, in ascending key order.
    virtual void visit_delivered(const std::string& export_name,
                                 const std::function<void(const DeliveredMember&)>& visit) = 0;
    // The members segpush removed from the destination (a leaver's removal it accepted), with
    // when (seconds since the epoch, UTC): the only ones it may put back when they rejoin.
    virtual void visit_removals(const std::string& export_name,
                                const std::function<void(std::string_view key, int64_t removed_at)>& visit) = 0;
    // The members the destination refused, and the values it refused: each run retries them a
    // few times, then holds them until their values change (RunMembers).
    virtual void visit_refused(const std::string& export_name,
                               const std::function<void(const RefusedMember&)>& visit) = 0;
    // The receipts runs in [since_run, before_run) recorded whose imports are not yet
    // confirmed, oldest first, each with its members (receipt_members.hpp).
    virtual void visit_open_receipts(
        const std::string& export_name, int64_t since_run, int64_t before_run,
        const std::function<void(std::string_view receipt, std::string_view members)>& visit) = 0;
    // Forgets the unconfirmed receipts of runs before `run_id` (their members were resumed,
    // changed or left).
    virtual void forget_receipts_before(const std::string& export_name, int64_t run_id) = 0;
    // Records one batch of a run's outcomes in one transaction; returns the ids of the
    // batch's new receipts, in its order.
    virtual std::vector<int64_t> record(const std::string& export_name, int64_t run_id, const DeliveryBatch& batch) = 0;
};

}  // namespace segpush
