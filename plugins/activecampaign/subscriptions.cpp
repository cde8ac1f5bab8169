#include "subscriptions.hpp"

#include <ctime>

namespace segpush::activecampaign {

namespace {

std::string utc_text(int64_t seconds) {
    const std::time_t when = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&when, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
    return text;
}

}  // namespace

const Membership* ContactState::on(uint64_t list_id) const {
    for (const auto& membership : memberships) {
        if (membership.list_id == list_id) return &membership;
    }
    return nullptr;
}

std::string kept_out_reason(int status, uint64_t list_id) {
    const std::string list = std::to_string(list_id);
    if (status == bounced) return "bounced on list " + list + " at ActiveCampaign";
    return "unsubscribed from list " + list + " at ActiveCampaign";
}

RestoreDecision decide_restore(const ContactState& state, uint64_t list_id, int64_t removed_at, int64_t clock_slack) {
    auto keep_out = [](std::string reason) { return RestoreDecision{RestoreDecision::keep_out, std::move(reason)}; };
    const std::string removal = "segpush removed them at " + utc_text(removed_at);
    if (!state.ok) return keep_out("ActiveCampaign's answer about the contact could not be read; not put back");
    if (state.bounced) return keep_out("the address bounced at ActiveCampaign since " + removal);
    // Another list showing the person's own unsubscribe, or a bounce, after segpush's removal:
    // perhaps "unsubscribe from all lists", which leaves a list already unsubscribed as it was.
    // An unmarked unsubscribe elsewhere within the slack may be segpush's own removal from
    // another list of the same segment, so only a later one counts.
    for (const auto& other : state.memberships) {
        if (other.list_id == list_id || (other.status != unsubscribed && other.status != bounced)) continue;
        const bool after = !other.changed_at ||
                           *other.changed_at >
                               removed_at + (other.self_made || other.status == bounced ? -clock_slack : clock_slack);
        if (after) {
            return keep_out(std::string(other.status == bounced ? "bounced" : "unsubscribed") + " from list " +
                            std::to_string(other.list_id) + " at ActiveCampaign" +
                            (other.udate.empty() ? "" : " on " + other.udate) + " after " + removal +
                            "; not put back on list " + std::to_string(list_id));
        }
    }
    const Membership* ours = state.on(list_id);
    if (!ours) return keep_out("no longer on list " + std::to_string(list_id) + " at ActiveCampaign since " + removal);
    if (ours->status == active) return {RestoreDecision::already_subscribed, {}};
    if (ours->status == unconfirmed) {
        return keep_out("joined list " + std::to_string(list_id) +
                        " again at ActiveCampaign and has not confirmed it yet (double opt-in)");
    }
    if (ours->status != unsubscribed) return keep_out(kept_out_reason(ours->status, list_id) + " since " + removal);
    if (ours->self_made) {
        return keep_out("unsubscribed themselves from list " + std::to_string(list_id) +
                        " at ActiveCampaign (through a campaign, an automation or with a reason) after " + removal);
    }
    if (!ours->changed_at) {
        return keep_out("unsubscribed from list " + std::to_string(list_id) + " at ActiveCampaign; its time (" +
                        (ours->udate.empty() ? std::string("none given") : ours->udate) +
                        ") cannot be compared with segpush's removal, so it is not put back");
    }
    if (*ours->changed_at > removed_at + clock_slack) {
        return keep_out("unsubscribed from list " + std::to_string(list_id) + " at ActiveCampaign on " + ours->udate +
                        ", after " + removal);
    }
    return {RestoreDecision::restore, {}};
}

}  // namespace segpush::activecampaign
