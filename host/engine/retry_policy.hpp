#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace segpush {

// The host's answer to RETRY: when the destination says when to come back (retry-after),
// then, plus a little jitter; otherwise exponential backoff with jitter. Given up after
// max_attempts tries of the same call.
struct RetryPolicy {
    int max_attempts = 8;
    std::chrono::milliseconds first_delay{1000};
    std::chrono::milliseconds max_delay{120000};

    // Delay before try number `failed_attempts + 1`. Jitter spreads retries (over [d/2, d],
    // or up to a tenth past retry-after) so parallel pushes that failed together do not
    // return together. Backing off further than the destination asked only wastes its
    // budget: its window has reopened by then.
    std::chrono::milliseconds delay(int failed_attempts, uint32_t retry_after_ms, std::mt19937_64& rng) const {
        if (retry_after_ms > 0) {
            std::uniform_int_distribution<int64_t> jitter(0, retry_after_ms / 10);
            return std::chrono::milliseconds(retry_after_ms + jitter(rng));
        }
        const int doublings = failed_attempts > 1 ? failed_attempts - 1 : 0;
        auto backoff = first_delay * (1LL << (doublings < 20 ? doublings : 20));
        if (backoff > max_delay) backoff = max_delay;
        std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
        return std::chrono::milliseconds(jitter(rng));
    }
};

}  // namespace segpush
