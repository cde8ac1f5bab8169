#include "engine/member_states.hpp"

#include <algorithm>
#include <map>

#include <segpush/plugin.h>

namespace segpush {

namespace {

bool is_final(MemberState state) {
    return state == MemberState::done || state == MemberState::rejected || state == MemberState::suppressed;
}

// One outcome per member: what applying its reports one after another would leave (see the
// rules above MemberStates).
struct NetOutcome {
    int64_t seq;
    const MemberOutcome* outcome;
    const std::string* receipt;  // nullptr: none usable
    bool given_back;             // a RETRY came first: the receipt the member had says nothing now
};

std::vector<NetOutcome> net_outcomes(const std::vector<MemberOutcome>& outcomes) {
    std::vector<const MemberOutcome*> sorted;
    sorted.reserve(outcomes.size());
    for (const auto& outcome : outcomes) sorted.push_back(&outcome);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const MemberOutcome* a, const MemberOutcome* b) { return a->seq < b->seq; });
    std::vector<NetOutcome> net;
    net.reserve(sorted.size());
    for (const MemberOutcome* report : sorted) {
        // A receipt longer than the ABI allows is not stored: the member is then simply sent
        // again should the run stop before it settles.
        const bool usable = report->state == MemberState::pending && !report->receipt.empty() &&
                            report->receipt.str().size() <= SEGPUSH_RECEIPT_MAX;
        const std::string* receipt = usable ? &report->receipt.str() : nullptr;
        if (net.empty() || net.back().seq != report->seq) {
            net.push_back({report->seq, report, receipt, report->state == MemberState::todo});
            continue;
        }
        NetOutcome& earlier = net.back();
        if (is_final(earlier.outcome->state)) continue;
        if (!receipt && report->state == MemberState::pending && earlier.outcome->state == MemberState::pending) {
            receipt = earlier.receipt;
        }
        earlier = {report->seq, report, receipt, earlier.given_back || report->state == MemberState::todo};
    }
    return net;
}

}  // namespace

void MemberStates::clear() {
    states_.clear();
    given_back_.clear();
    std::vector<uint32_t>().swap(receipt_of_);
    receipt_rows_.assign(1, 0);
    waiting_in_row_.clear();
}

void MemberStates::set(int64_t seq, MemberState state, bool leaver) {
    if (seq >= end()) states_.resize(static_cast<size_t>(seq) + 1, kAbsent);
    states_[static_cast<size_t>(seq)] = static_cast<uint8_t>(static_cast<uint8_t>(state) | (leaver ? kLeaver : 0));
}

const uint8_t* MemberStates::slot(int64_t seq) const {
    if (seq <= 0 || seq >= end() || states_[static_cast<size_t>(seq)] == kAbsent) return nullptr;
    return &states_[static_cast<size_t>(seq)];
}

bool MemberStates::exists(int64_t seq) const { return slot(seq) != nullptr; }

bool MemberStates::has(int64_t seq, MemberState state) const {
    const uint8_t* state_byte = slot(seq);
    return state_byte != nullptr && (*state_byte & kStateBits) == static_cast<uint8_t>(state);
}

bool MemberStates::is_leaver(int64_t seq) const {
    const uint8_t* state_byte = slot(seq);
    return state_byte != nullptr && (*state_byte & kLeaver) != 0;
}

int64_t MemberStates::count() const { return end() - std::count(states_.begin(), states_.end(), kAbsent); }

int64_t MemberStates::count(MemberState state) const {
    return std::count_if(states_.begin(), states_.end(), [state](uint8_t byte) {
        return byte != kAbsent && (byte & kStateBits) == static_cast<uint8_t>(state);
    });
}

int64_t MemberStates::receipt_row_of(int64_t seq) const {
    if (seq < 0 || seq >= static_cast<int64_t>(receipt_of_.size()) || receipt_of_[static_cast<size_t>(seq)] == 0) {
        return 0;
    }
    return receipt_rows_[receipt_of_[static_cast<size_t>(seq)]];
}

void MemberStates::drop_stale(std::vector<MemberOutcome>& pushed) const {
    if (given_back_.empty()) return;
    pushed.erase(std::remove_if(pushed.begin(), pushed.end(),
                                [&](const MemberOutcome& outcome) {
                                    return outcome.state == MemberState::pending && given_back_.count(outcome.seq);
                                }),
                 pushed.end());
}

MemberStates::Changes MemberStates::plan(const std::vector<MemberOutcome>& outcomes, ReportedBy reported_by) const {
    Changes changes;
    if (reported_by == ReportedBy::collect) {
        for (const auto& outcome : outcomes) {
            if (outcome.state == MemberState::todo) changes.given_back.push_back(outcome.seq);
        }
    }
    OutcomeTally& tally = changes.tally;
    // A row as the members planned so far have left it: nullptr once none waits on it.
    const auto row_now = [&](int64_t row) -> const RowWait* {
        if (auto planned = changes.rows.find(row); planned != changes.rows.end()) {
            return planned->second.members > 0 ? &planned->second : nullptr;
        }
        const auto held = waiting_in_row_.find(row);
        return held != waiting_in_row_.end() ? &held->second : nullptr;
    };
    // The member no longer waits on the receipt it had; a row left by all goes (see above).
    const auto leave_receipt = [&](int64_t seq, bool accepted) {
        const int64_t row = receipt_row_of(seq);
        if (row == 0) return;
        changes.leaving_receipts.push_back(seq);
        auto planned = changes.rows.find(row);
        if (planned == changes.rows.end()) {
            const auto held = waiting_in_row_.find(row);
            planned = changes.rows.emplace(row, held != waiting_in_row_.end() ? held->second : RowWait{}).first;
        }
        RowWait& waiting = planned->second;
        waiting.all_accepted = waiting.all_accepted && accepted;
        if (--waiting.members <= 0) {
            (waiting.all_accepted ? changes.rows_confirmed : changes.rows_forgotten).push_back(row);
        }
    };
    std::unordered_map<int64_t, int64_t> accepted_by_row;  // members accepted with the receipt they waited on
    std::vector<int64_t> accepted_with_receipt;
    std::map<std::string_view, std::vector<int64_t>> receipts;  // receipt -> its members, by seq
    for (const NetOutcome& net : net_outcomes(outcomes)) {
        const uint8_t* state = slot(net.seq);
        if (state == nullptr || is_final(static_cast<MemberState>(*state & kStateBits))) continue;
        const bool leaver = (*state & kLeaver) != 0;
        const MemberState to = net.outcome->state;
        changes.new_states.emplace_back(net.seq,
                                        static_cast<uint8_t>((leaver ? kLeaver : 0) | static_cast<uint8_t>(to)));
        if (to == MemberState::pending) {
            // A new receipt replaces the old (a resubmitted import); one given back is void.
            if ((net.receipt && !leaver) || net.given_back) leave_receipt(net.seq, false);
            if (net.receipt && !leaver) receipts[*net.receipt].push_back(net.seq);
            continue;
        }
        if ((to == MemberState::done || to == MemberState::suppressed) && !leaver) changes.settled.push_back(net.seq);
        if (to == MemberState::done) {
            ++(leaver ? tally.removed : tally.accepted);
            if (const int64_t row = leaver ? 0 : receipt_row_of(net.seq); row != 0) {
                ++accepted_by_row[row];
                accepted_with_receipt.push_back(net.seq);  // left below, once all are known
                continue;
            }
            changes.delivered.push_back(net.seq);
        } else if (to == MemberState::rejected) {
            ++tally.rejected;
            changes.refusals.push_back({net.seq, &net.outcome->reason});
            if (!leaver) changes.rejected.push_back(net.seq);
        } else if (to == MemberState::suppressed) {
            ++tally.suppressed;
            changes.refusals.push_back({net.seq, &net.outcome->reason});
            changes.suppressed.push_back(net.seq);
        }
        leave_receipt(net.seq, false);
    }
    // A member accepted with its receipt is delivered by the row when every member the row
    // waited on is accepted (here and before): the row is kept, confirmed. Otherwise it is
    // delivered on its own. Decided per row before any member leaves it.
    std::unordered_map<int64_t, bool> kept;
    for (const auto& [row, accepted] : accepted_by_row) {
        const RowWait* waiting = row_now(row);
        kept[row] = waiting != nullptr && waiting->all_accepted && waiting->members == accepted;
    }
    for (const int64_t seq : accepted_with_receipt) {
        const bool by_row = kept[receipt_row_of(seq)];
        if (!by_row) changes.delivered.push_back(seq);
        leave_receipt(seq, by_row);
    }
    std::sort(changes.delivered.begin(), changes.delivered.end());
    for (auto& [receipt, seqs] : receipts) changes.new_receipts.push_back({receipt, std::move(seqs)});
    return changes;
}

void MemberStates::commit(const Changes& changes, const std::vector<int64_t>& new_rows) {
    for (const auto& [seq, state] : changes.new_states) states_[static_cast<size_t>(seq)] = state;
    for (const int64_t seq : changes.leaving_receipts) receipt_of_[static_cast<size_t>(seq)] = 0;
    given_back_.insert(changes.given_back.begin(), changes.given_back.end());
    for (const auto& [row, waiting] : changes.rows) {
        if (waiting.members <= 0) {
            waiting_in_row_.erase(row);
        } else {
            waiting_in_row_[row] = waiting;
        }
    }
    for (size_t i = 0; i < changes.new_receipts.size(); ++i) {
        const std::vector<int64_t>& seqs = changes.new_receipts[i].seqs;
        receipt_rows_.push_back(new_rows[i]);
        waiting_in_row_[new_rows[i]] = RowWait{static_cast<int64_t>(seqs.size()), true};
        if (receipt_of_.size() < states_.size()) receipt_of_.resize(states_.size(), 0);
        for (const int64_t seq : seqs)
            receipt_of_[static_cast<size_t>(seq)] = static_cast<uint32_t>(receipt_rows_.size() - 1);
    }
}

std::vector<int64_t> MemberStates::pending() const {
    std::vector<int64_t> seqs;
    for (int64_t seq = 1; seq < end(); ++seq) {
        if (has(seq, MemberState::pending)) seqs.push_back(seq);
    }
    return seqs;
}

OutcomeTally MemberStates::settle_pending() {
    OutcomeTally tally;
    for (const int64_t seq : pending()) {
        const bool leaver = is_leaver(seq);
        ++(leaver ? tally.removed : tally.accepted);
        set(seq, MemberState::done, leaver);
    }
    std::vector<uint32_t>().swap(receipt_of_);
    receipt_rows_.assign(1, 0);
    waiting_in_row_.clear();
    return tally;
}

}  // namespace segpush
