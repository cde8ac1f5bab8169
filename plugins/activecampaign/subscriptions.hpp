// What ActiveCampaign holds about a contact's subscription to a list, and the rules the plugin
// follows before it changes one. Pure functions, no I/O (responses.hpp reads these from
// ActiveCampaign's answers).
//
// The rules, whatever path sends a contact:
//   - A contact whose status on the list is unsubscribed (2) or bounced (3) is never put back
//     (SUPPRESSED), with one exception: a member segpush itself removed, when nothing at
//     ActiveCampaign changed since (decide_restore).
//   - contactLists status 1, the only call that can re-subscribe, is sent only after the
//     contact's current status was read and allowed it.
//   - Bulk import never subscribes an unsubscribed contact (ActiveCampaign's rule), so it may
//     carry everyone else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segpush::activecampaign {

// ActiveCampaign's list statuses (GET /contacts?status=, contactLists.status).
enum ListStatus : int { unconfirmed = 0, active = 1, unsubscribed = 2, bounced = 3 };

// A contact's membership of one list, as GET /api/3/contacts/{id} (its "contactLists") or
// GET /api/3/contacts/{id}/contactLists list them.
struct Membership {
    uint64_t list_id = 0;
    int status = -1;
    std::string udate;                  // when the status last changed, as written
    std::optional<int64_t> changed_at;  // udate in seconds UTC; nullopt when it has no offset
    // Set when the person or an automation made the change: an unsubscribe link in a campaign
    // (campaign, message), an "unsubscribe" automation step, or a reason they gave.
    bool self_made = false;
};

struct ContactState {
    bool ok = false;       // false too when a membership could not be read: nothing is assumed
    bool bounced = false;  // contact.bounced_hard
    std::vector<Membership> memberships;
    std::optional<uint64_t> total;  // meta.total of a paged answer, when given
    const Membership* on(uint64_t list_id) const;
};

// Whether a contact segpush removed from the list (at removed_at, seconds UTC) may be put
// back on it now. ActiveCampaign keeps no record of who unsubscribed a contact through the
// API, so "segpush's own" is read from what it does keep: the membership is still the
// unsubscribed status segpush left, changed no later than segpush's removal (clock_slack
// allows for the two clocks), with no mark of the person's own doing (campaign, automation,
// reason); the address has not bounced; and no other list shows the person unsubscribing
// after it (an "unsubscribe from all lists" reaches our list only if it was still active).
// Anything else (no membership any more, one awaiting the person's confirmation) changed
// since too: kept out.
struct RestoreDecision {
    enum Kind {
        restore,             // still as segpush left it: subscribe again (contactLists status 1)
        already_subscribed,  // someone put them back already: nothing to restore
        keep_out             // SUPPRESSED, for `reason`
    } kind = keep_out;
    std::string reason;
};
RestoreDecision decide_restore(const ContactState& state, uint64_t list_id, int64_t removed_at, int64_t clock_slack);

// The reason reported for a contact kept out because of its status on the list.
std::string kept_out_reason(int status, uint64_t list_id);

}  // namespace segpush::activecampaign
