/*
 * segpush/plugin_kit.hpp — helpers for writing a segpush destination plugin in C++17.
 *
 * The ABI is segpush/plugin.h alone; this header only saves a C++ plugin the boilerplate every
 * plugin repeats around it, and gets the ABI's fiddly rules right once:
 *
 *   fail                     fill the host's segpush_error (fields that fit, text cut safely)
 *   fail_current_exception   the same for the exception being handled: the right class and text
 *   guard                    run an entry point's body so that no exception crosses the C ABI
 *   Host                     the host services kept from segpush_plugin_entry: log, progress,
 *                            cancellation, the host's ABI minor
 *   OutcomeList, publish     build per-record outcomes and hand them to the host, with release
 *   action_of, row_of        read a segpush_batch as every host version sends it
 *
 * Header-only, no dependency beyond the C++17 standard library and segpush/plugin.h, nothing
 * exported: each plugin gets its own copy. The kit keeps no global state of its own; the plugin
 * owns its Host object. A plugin written in C uses plugin.h directly and needs none of this.
 *
 * Ownership words (borrowed, plugin-owned, host-owned) and thread tags ([any-thread]) mean
 * what they mean in plugin.h.
 */
#ifndef SEGPUSH_PLUGIN_KIT_HPP
#define SEGPUSH_PLUGIN_KIT_HPP

#if !defined(__cplusplus) || \
    (__cplusplus < 201703L && (!defined(_MSVC_LANG) || _MSVC_LANG < 201703L))
#error "segpush/plugin_kit.hpp needs C++17 or later; a plugin in C uses segpush/plugin.h alone"
#endif

#include <segpush/plugin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segpush::kit {

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

namespace detail {

// Copies `text` into the fixed buffer `to` of `capacity` bytes (> 0), NUL-terminated. Text
// that does not fit is cut before the UTF-8 sequence that would not fit whole, so the host
// never receives half a character.
inline void copy_text(char* to, size_t capacity, std::string_view text) noexcept {
    size_t n = std::min(text.size(), capacity - 1);
    if (n < text.size()) {
        while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
            --n;  // a continuation byte
    }
    if (n > 0) std::memcpy(to, text.data(), n);
    to[n] = '\0';
}

// A message of up to SEGPUSH_MESSAGE_MAX bytes put together without allocating: it is written
// while the process may be out of memory.
class FixedMessage {
public:
    FixedMessage& operator<<(std::string_view piece) noexcept {
        const size_t room = sizeof text_ -
                            length_;  // one byte past the end: tells copy_text it was cut
        const size_t n = std::min(piece.size(), room);
        if (n > 0) std::memcpy(text_ + length_, piece.data(), n);
        length_ += n;
        return *this;
    }
    std::string_view view() const noexcept { return std::string_view(text_, length_); }

private:
    char text_[SEGPUSH_MESSAGE_MAX + 1];
    size_t length_ = 0;
};

}  // namespace detail

/*
 * Fills the host's error for a call that returns `status`, and returns `status`, so that
 *     return kit::fail(err, SEGPUSH_ERR_CONFIG, "path", "path must not be empty: ...");
 * classifies and reports in one line.
 * err: host-owned, as passed to the entry point; may be NULL (nothing is written). Only the
 * fields its struct_size covers are written. field (the settings key at fault, for
 * SEGPUSH_ERR_CONFIG; "" for none) and message are copied, cut to fit on a UTF-8 character
 * boundary; both are borrowed. A message is for people: say what to do, never include a
 * secret. retry_after_ms goes with SEGPUSH_RETRY, vendor_code is the destination's own code
 * (an HTTP status, say). Allocates nothing, never throws. [any-thread]
 */
inline segpush_status fail(segpush_error* err, segpush_status status, std::string_view field,
                           std::string_view message, uint32_t retry_after_ms = 0,
                           int32_t vendor_code = 0) noexcept {
    if (!err) return status;
    if (SEGPUSH_HAS_FIELD(err, segpush_error, status)) err->status = status;
    if (SEGPUSH_HAS_FIELD(err, segpush_error, retry_after_ms)) err->retry_after_ms = retry_after_ms;
    if (SEGPUSH_HAS_FIELD(err, segpush_error, vendor_code)) err->vendor_code = vendor_code;
    if (SEGPUSH_HAS_FIELD(err, segpush_error, field))
        detail::copy_text(err->field, sizeof err->field, field);
    if (SEGPUSH_HAS_FIELD(err, segpush_error, message))
        detail::copy_text(err->message, sizeof err->message, message);
    return status;
}

/*
 * Reports the exception being handled, and returns the status it maps to. Call it only inside
 * a catch block (elsewhere it reports an unexpected error without a reason).
 *   std::bad_alloc         SEGPUSH_ERR_INTERNAL, "out of memory while <doing>"
 *   other std::exception   SEGPUSH_ERR_INTERNAL, "unexpected error while <doing>: <what()>"
 *   anything else          SEGPUSH_ERR_INTERNAL, "unexpected error while <doing>"
 * The ABI has no class of its own for running out of memory: plugin.h names it among the
 * causes of SEGPUSH_ERR_INTERNAL, which the host retries within the export's retry budget.
 * A plugin that can classify a failure better (a setting at fault, a refused request) returns
 * that status itself instead of throwing. what() must not hold a secret: it reaches the
 * host's log. doing: borrowed, a phrase such as "pushing a batch".
 * Allocates nothing, never throws. [any-thread]
 */
inline segpush_status fail_current_exception(segpush_error* err, const char* doing) noexcept {
    detail::FixedMessage message;
    const std::string_view what_doing = doing ? doing : "running";
    const std::exception_ptr current = std::current_exception();
    try {
        if (current) std::rethrow_exception(current);
        message << "unexpected error while " << what_doing;
    } catch (const std::bad_alloc&) {
        message << "out of memory while " << what_doing;
    } catch (const std::exception& e) {
        const char* what = e.what();
        message << "unexpected error while " << what_doing;
        if (what && *what) message << ": " << what;
    } catch (...) {
        message << "unexpected error while " << what_doing;
    }
    return fail(err, SEGPUSH_ERR_INTERNAL, "", message.view());
}

/*
 * Runs `body` (a callable returning segpush_status) and returns what it returns; an exception
 * that leaves it is reported through fail_current_exception(err, doing) instead of crossing
 * the C ABI, which would end the host process. Wrap the body of every entry point that can
 * throw (anything that allocates can):
 *     segpush_status push_batch(segpush_export* exp, const segpush_batch* batch,
 *                               segpush_outcomes* outcomes, segpush_error* err) {
 *         return kit::guard(err, "pushing a batch", [&] { return push_batch_impl(exp, batch,
 * outcomes, err); });
 *     }
 * What the body allocated for the call must be released by its own destructors (RAII), and
 * what the host will not call again for must still be freed: finish_export frees its handle
 * however it ends, so hold it in a std::unique_ptr from the start. Outcomes the body did not
 * publish are not reported. [any-thread]: the guard adds no state.
 */
template <class Body>
segpush_status guard(segpush_error* err, const char* doing, Body&& body) noexcept {
    try {
        return std::forward<Body>(body)();
    } catch (...) {
        return fail_current_exception(err, doing);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Host services                                                                             */
/* ---------------------------------------------------------------------------------------- */

/*
 * The host services handed to segpush_plugin_entry. Keep one Host object per plugin, with
 * static storage, and attach it in the entry point:
 *     namespace { segpush::kit::Host g_host; }
 *     extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host*
 * host) { if (!g_host.attach(host)) return nullptr;   // another ABI major: already logged return
 * &kPlugin;
 *     }
 * The segpush_host it points to is host-owned and valid until unload. attach runs in the entry
 * point, which is never concurrent with any other call; every other member only reads, may
 * be called from any thread (the plugin's own included) and never throws. Before attach, or
 * attached to NULL (a test driving the plugin without a host), the services do nothing:
 * nothing is logged, nothing is cancelled, and abi_minor() is 0.
 */
class Host {
public:
    // Keeps `host` and returns true, or returns false (logging why, keeping nothing) when the
    // host speaks another ABI major: the entry point then returns NULL, declining to load.
    bool attach(const segpush_host* host) noexcept {
        if (host && host->abi_major != SEGPUSH_ABI_MAJOR) {
            if (host->log) {
                char message[160];
                std::snprintf(message, sizeof message,
                              "this plugin was built for plugin ABI %d.%d and this host speaks "
                              "%u.%u (major versions "
                              "must match): use a build of the plugin made for this host",
                              SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR,
                              static_cast<unsigned>(host->abi_major),
                              static_cast<unsigned>(host->abi_minor));
                host->log(host->host_data, SEGPUSH_LOG_ERROR, message);
            }
            return false;
        }
        host_ = host;
        return true;
    }

    // The host's table, or NULL; for what the kit does not wrap (reserve_slot, hold_budget:
    // check SEGPUSH_HAS_FIELD(get(), segpush_host, ...) first).
    const segpush_host* get() const noexcept { return host_; }

    // The host's ABI minor: what it knows of later additions (0 without a host).
    uint32_t abi_minor() const noexcept { return host_ ? host_->abi_minor : 0; }

    // True when the host speaks this ABI major at `minor` or later: it knows what that minor
    // added (statuses, fields).
    bool speaks(uint32_t minor) const noexcept {
        return host_ && host_->abi_major == SEGPUSH_ABI_MAJOR && host_->abi_minor >= minor;
    }

    // One log line; the host prefixes the plugin id. message: borrowed. Never pass a secret.
    void log(segpush_log_level level, const char* message) const noexcept {
        if (host_ && host_->log && message) host_->log(host_->host_data, level, message);
    }
    void log(segpush_log_level level, const std::string& message) const noexcept {
        log(level, message.c_str());
    }

    // Progress of the export that export_token (the token begin_export was given) names: records
    // done so far, of total (0: unknown). message: borrowed, may be NULL.
    void progress(void* export_token, uint64_t done, uint64_t total = 0,
                  const char* message = nullptr) const noexcept {
        if (host_ && host_->progress)
            host_->progress(host_->host_data, export_token, done, total, message);
    }

    // True once the host wants the export that export_token names to stop. Cheap: poll it in
    // every long wait and return SEGPUSH_ERR_CANCELLED.
    bool is_cancelled(void* export_token) const noexcept {
        return host_ && host_->is_cancelled &&
               host_->is_cancelled(host_->host_data, export_token) != 0;
    }

private:
    const segpush_host* host_ = nullptr;
};

/* ---------------------------------------------------------------------------------------- */
/* Outcomes                                                                                  */
/* ---------------------------------------------------------------------------------------- */

class OutcomeList;
inline void publish(std::unique_ptr<OutcomeList> list, segpush_outcomes* out,
                    const Host& host) noexcept;

/*
 * Per-record outcomes of one call (push_batch, collect_outcomes, finish_export,
 * resume_pending), built by the plugin and handed to the host with publish(). It owns every
 * string it hands out: reasons and receipts are copied in; records in a row that share a
 * reason or a receipt (a batch's import id, say) share one copy.
 * Not thread-safe: one thread builds a list, or the plugin locks around it.
 */
class OutcomeList {
public:
    // Room for `records` outcomes: one allocation where a batch's outcomes would take several.
    void reserve(size_t records) { items_.reserve(records); }

    /*
     * Adds the outcome of one record. reason: why, for a person (REJECTED, SUPPRESSED,
     * optionally RETRY); empty for none. receipt: where the destination holds a PENDING record
     * (see segpush_outcomes.receipts; at most SEGPUSH_RECEIPT_MAX bytes, never a secret);
     * empty for none. Both borrowed: copied. Statuses are written as given; publish() adapts
     * them to the host.
     */
    void add(uint64_t record_id, segpush_record_status status, std::string_view reason = {},
             std::string_view receipt = {}) {
        const char* kept_reason = keep(reason);
        const char* kept_receipt = keep(receipt);
        const bool with_receipts = kept_receipt || !receipts_.empty();
        if (with_receipts) {
            // Room first, so that the two arrays stay parallel whatever throws below.
            receipts_.reserve(std::max(items_.capacity(), items_.size() + 1));
            receipts_.resize(items_.size(),
                             nullptr);  // at the first receipt: the earlier records have none
        }
        items_.push_back({record_id, status, kept_reason});
        if (with_receipts) receipts_.push_back(kept_receipt);
    }

    // Adds every outcome of `other`, in order, with copies of its reasons and receipts.
    void append(const OutcomeList& other) {
        for (size_t i = 0; i < other.items_.size(); ++i) {
            const segpush_record_outcome& item = other.items_[i];
            add(item.record_id, item.status, item.reason ? item.reason : "",
                other.receipt(i) ? other.receipt(i) : "");
        }
    }

    bool empty() const noexcept { return items_.empty(); }
    size_t size() const noexcept { return items_.size(); }
    const segpush_record_outcome& operator[](size_t i) const noexcept { return items_[i]; }
    // Record i's receipt, or NULL.
    const char* receipt(size_t i) const noexcept {
        return i < receipts_.size() ? receipts_[i] : nullptr;
    }
    void clear() noexcept {
        items_.clear();
        receipts_.clear();
        texts_.clear();
    }

private:
    friend void publish(std::unique_ptr<OutcomeList> list, segpush_outcomes* out,
                        const Host& host) noexcept;

    const char* keep(std::string_view text) {
        if (text.empty()) return nullptr;
        if (texts_.empty() || texts_.back() != text) texts_.emplace_back(text);
        return texts_.back().c_str();
    }

    std::vector<segpush_record_outcome> items_;
    std::vector<const char*>
        receipts_;  // empty until a record has a receipt, then parallel to items_
    std::deque<std::string>
        texts_;  // stable addresses: a deque never moves its elements as it grows
};

namespace detail {

// The release callback publish() installs: frees the list and zeroes what it set. Called by
// the host exactly once, on any thread.
inline void release_outcome_list(segpush_outcomes* self) {
    delete static_cast<OutcomeList*>(self->private_data);
    self->private_data = nullptr;
    self->items = nullptr;
    if (SEGPUSH_HAS_FIELD(self, segpush_outcomes, receipts)) self->receipts = nullptr;
    self->count = 0;
    self->release = nullptr;
}

}  // namespace detail

/*
 * Hands `list` to the host through `out` (host-owned, zeroed by the host; NULL is allowed and
 * drops the list). The list's memory is then plugin-owned until the host calls out->release,
 * which frees it; the host does so exactly once, on any thread, before close_connection.
 * An empty list (or NULL) leaves `out` zeroed (release NULL), as plugin.h asks of a call with
 * nothing to report. The list is built on the heap from the start, so that handing it over
 * allocates nothing and cannot fail: a plugin can change the destination first and publish
 * what it did after, without a failure in between that would make the host send it again:
 *     auto list = std::make_unique<kit::OutcomeList>();
 *     ... list->add(...) for each record, deliver ...
 *     kit::publish(std::move(list), outcomes, g_host);
 *     return SEGPUSH_OK;
 * The ABI's version rules are applied here:
 *   - fields are written only when out->struct_size covers them; a host before 1.5 hands the
 *     struct over with struct_size 0, which is first set to SEGPUSH_LEGACY_OUTCOMES_SIZE of the
 *     host's minor, so receipts reach a host of 1.3 or 1.4 and never a smaller struct;
 *   - SUPPRESSED goes only to hosts of 1.4 or later; older ones are told REJECTED, with the
 *     same reason.
 * Call it at most once per call, and only for a call that reports outcomes (push_batch always
 * may; see plugin.h for what each status lets a call report). Never throws.
 */
inline void publish(std::unique_ptr<OutcomeList> owned, segpush_outcomes* out,
                    const Host& host) noexcept {
    if (!out || !owned || owned->empty()) return;
    if (!host.speaks(4)) {
        for (auto& item : owned->items_) {
            if (item.status == SEGPUSH_RECORD_SUPPRESSED) item.status = SEGPUSH_RECORD_REJECTED;
        }
    }
    if (out->struct_size == 0) out->struct_size = SEGPUSH_LEGACY_OUTCOMES_SIZE(host.abi_minor());
    out->count = owned->items_.size();
    out->items = owned->items_.data();
    if (SEGPUSH_HAS_FIELD(out, segpush_outcomes, receipts)) {
        out->receipts = owned->receipts_.empty() ? nullptr : owned->receipts_.data();
    }
    out->release = detail::release_outcome_list;
    out->private_data = owned.release();
}

/* ---------------------------------------------------------------------------------------- */
/* Batches                                                                                   */
/* ---------------------------------------------------------------------------------------- */

// The batch's SEGPUSH_ACTION_*: UPSERT for a batch from a host before 1.1, which has no action.
inline uint32_t action_of(const segpush_batch& batch) noexcept {
    return SEGPUSH_HAS_FIELD(&batch, segpush_batch, action)
               ? batch.action
               : static_cast<uint32_t>(SEGPUSH_ACTION_UPSERT);
}

// Record r's values, n_fields of them in the order begin_export was given. Borrowed, like the
// batch.
inline const segpush_value* row_of(const segpush_batch& batch, size_t r) noexcept {
    return batch.values + r * batch.n_fields;
}

}  // namespace segpush::kit

#endif  // SEGPUSH_PLUGIN_KIT_HPP
