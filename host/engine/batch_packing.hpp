#pragma once

#include <cstddef>
#include <cstdint>

namespace segpush {

// How a run packs the members it sends into push_batch calls, in seq order: the run fetches
// up to the plugin's records per batch at a time and takes them one by one into the batch
// until one does not fit. Run::next_batch sends by this rule and a dry run counts by it, so
// the requests a dry run predicts are the ones a run makes.
struct BatchPacking {
    uint32_t max_records = 0;  // the plugin's records per batch (its default when it declares none)
    uint64_t max_bytes = 0;    // 0: no limit
    size_t n_fields = 0;

    // Values plus a little JSON framing per field: a conservative estimate of a record's share
    // of the request, kept under the plugin's byte limit.
    uint64_t size_of(size_t payload_size) const { return payload_size + 16 * static_cast<uint64_t>(n_fields); }

    enum class Fit {
        take,       // into the batch
        too_large,  // larger than a request may be on its own: refused, never sent
        next_batch  // the batch ends before it (another action, or no room left)
    };
    // The next member (`action`, `size` from size_of) offered to a batch holding `records`
    // members of `batch_action` and `bytes` bytes.
    Fit fit(size_t records, uint32_t batch_action, uint64_t bytes, uint32_t action, uint64_t size) const {
        if (records > 0 && action != batch_action) return Fit::next_batch;
        if (max_bytes && size > max_bytes) return Fit::too_large;
        if (max_bytes && bytes + size > max_bytes && records > 0) return Fit::next_batch;
        return Fit::take;
    }
};

}  // namespace segpush
