#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace segpush {

// The host's answer to RETRY: exponential backoff with jitter, never sooner than the
// destination asked (retry-after), given up after max_attempts tries of the same call.
struct RetryPolicy {
    int max_attempts = 8;
    std::chrono::milliseconds first_delay{1000};
    std::chrono::milliseconds max_delay{120000};

    // Delay before try number `failed_attempts + 1`. Jitter spreads retries over [d/2, d] so
    // parallel pushes that failed together do not return together.
    std::chrono::milliseconds delay(int failed_attempts, uint32_t retry_after_ms, std::mt19937_64& rng) const {
        const int doublings = failed_attempts > 1 ? failed_attempts - 1 : 0;
        auto backoff = first_delay * (1LL << (doublings < 20 ? doublings : 20));
        if (backoff > max_delay) backoff = max_delay;
        std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
        const auto chosen = std::chrono::milliseconds(jitter(rng));
        const auto asked = std::chrono::milliseconds(retry_after_ms);
        return asked > chosen ? asked : chosen;
    }
};

}  // namespace segpush
