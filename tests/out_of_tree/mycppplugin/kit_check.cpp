// Checks the C++ helper kit (segpush/plugin_kit.hpp) as installed: the error filling, the
// exception guard, the outcome lists against hosts of several ABI minors, the host services.
// Built out of tree against the installed kit and run by tests/out_of_tree/run_test.cmake;
// exits non-zero, naming each failed check, when the kit breaks a rule of plugin.h.
#include <segpush/plugin.h>
#include <segpush/plugin_kit.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace kit = segpush::kit;

namespace {

int g_failed = 0;
int g_checked = 0;

void check(bool ok, const char* what, int line) {
    ++g_checked;
    if (!ok) {
        ++g_failed;
        std::fprintf(stderr, "kit_check.cpp:%d: FAILED: %s\n", line, what);
    }
}
#define CHECK(expr) check((expr), #expr, __LINE__)

segpush_error fresh_error() {
    segpush_error err{};
    err.struct_size = sizeof err;
    return err;
}

// A host's segpush_outcomes of `size` bytes, followed by bytes nobody may write.
struct GuardedOutcomes {
    static constexpr unsigned char kCanary = 0xA5;
    std::vector<unsigned char> bytes;
    size_t size;
    GuardedOutcomes(size_t host_size, uint32_t struct_size)
        : bytes(sizeof(segpush_outcomes) + 64, kCanary), size(host_size) {
        std::memset(bytes.data(), 0, host_size);
        get()->struct_size = struct_size;
    }
    segpush_outcomes* get() { return reinterpret_cast<segpush_outcomes*>(bytes.data()); }
    bool canary_intact() const {
        for (size_t i = size; i < bytes.size(); ++i) {
            if (bytes[i] != kCanary) return false;
        }
        return true;
    }
};

std::vector<std::string> g_logged;
void log_line(void*, segpush_log_level, const char* message) { g_logged.emplace_back(message); }
int cancelled_always(void*, void*) { return 1; }

segpush_host host_of(uint32_t major, uint32_t minor) {
    segpush_host host{};
    host.struct_size = sizeof host;
    host.abi_major = major;
    host.abi_minor = minor;
    host.host_version = "test";
    host.log = log_line;
    host.is_cancelled = cancelled_always;
    return host;
}

std::unique_ptr<kit::OutcomeList> sample_outcomes() {
    auto list = std::make_unique<kit::OutcomeList>();
    list->add(1, SEGPUSH_RECORD_ACCEPTED);
    list->add(2, SEGPUSH_RECORD_PENDING, "", "batch-7");
    list->add(3, SEGPUSH_RECORD_SUPPRESSED, "unsubscribed from list 3");
    return list;
}

void errors() {
    CHECK(kit::fail(nullptr, SEGPUSH_ERR_CONFIG, "path", "no err: nothing written") == SEGPUSH_ERR_CONFIG);

    segpush_error err = fresh_error();
    CHECK(kit::fail(&err, SEGPUSH_RETRY, "host", "throttled", 2000, 429) == SEGPUSH_RETRY);
    CHECK(err.status == SEGPUSH_RETRY);
    CHECK(err.retry_after_ms == 2000);
    CHECK(err.vendor_code == 429);
    CHECK(std::strcmp(err.field, "host") == 0);
    CHECK(std::strcmp(err.message, "throttled") == 0);

    // Cut to fit, never inside a UTF-8 character: 1022 bytes and a two-byte "é" leave the "é" out.
    err = fresh_error();
    const std::string long_text = std::string(SEGPUSH_MESSAGE_MAX - 2, 'a') + "\xC3\xA9" + "tail";
    kit::fail(&err, SEGPUSH_ERR_DATA, "", long_text);
    CHECK(std::strlen(err.message) == SEGPUSH_MESSAGE_MAX - 2);
    CHECK(err.message[SEGPUSH_MESSAGE_MAX - 3] == 'a');
    // Exactly full: kept whole.
    err = fresh_error();
    const std::string full(SEGPUSH_MESSAGE_MAX - 1, 'b');
    kit::fail(&err, SEGPUSH_ERR_DATA, "", full);
    CHECK(full == err.message);
    err = fresh_error();
    kit::fail(&err, SEGPUSH_ERR_CONFIG, std::string(SEGPUSH_FIELD_PATH_MAX + 10, 'f'), "x");
    CHECK(std::strlen(err.field) == SEGPUSH_FIELD_PATH_MAX - 1);

    // Only the fields the host's struct holds are written.
    std::vector<unsigned char> small(sizeof(segpush_error), 0x5A);
    auto* shrunk = reinterpret_cast<segpush_error*>(small.data());
    shrunk->struct_size = offsetof(segpush_error, field);
    kit::fail(shrunk, SEGPUSH_ERR_CONFIG, "path", "message");
    CHECK(shrunk->status == SEGPUSH_ERR_CONFIG);
    bool untouched = true;
    for (size_t i = offsetof(segpush_error, field); i < small.size(); ++i) untouched = untouched && small[i] == 0x5A;
    CHECK(untouched);
}

void guard() {
    segpush_error err = fresh_error();
    CHECK(kit::guard(&err, "pushing a batch", [] { return SEGPUSH_OK; }) == SEGPUSH_OK);
    CHECK(err.message[0] == '\0');

    err = fresh_error();
    CHECK(kit::guard(&err, "pushing a batch", []() -> segpush_status { throw std::bad_alloc(); }) ==
          SEGPUSH_ERR_INTERNAL);
    CHECK(err.status == SEGPUSH_ERR_INTERNAL);
    CHECK(std::strcmp(err.message, "out of memory while pushing a batch") == 0);

    err = fresh_error();
    CHECK(kit::guard(&err, "starting the export", []() -> segpush_status { throw std::runtime_error("no list"); }) ==
          SEGPUSH_ERR_INTERNAL);
    CHECK(std::strcmp(err.message, "unexpected error while starting the export: no list") == 0);

    err = fresh_error();
    CHECK(kit::guard(&err, "finishing the export", []() -> segpush_status { throw 42; }) == SEGPUSH_ERR_INTERNAL);
    CHECK(std::strcmp(err.message, "unexpected error while finishing the export") == 0);

    // A what() longer than the message holds is cut, and the message stays NUL-terminated.
    err = fresh_error();
    const std::string huge(3 * SEGPUSH_MESSAGE_MAX, 'w');
    kit::guard(&err, "x", [&]() -> segpush_status { throw std::runtime_error(huge); });
    CHECK(std::strlen(err.message) == SEGPUSH_MESSAGE_MAX - 1);

    // Outside a catch block: an unexpected error without a reason, not a crash.
    err = fresh_error();
    CHECK(kit::fail_current_exception(&err, "idling") == SEGPUSH_ERR_INTERNAL);
    CHECK(std::strcmp(err.message, "unexpected error while idling") == 0);
}

void outcomes() {
    const segpush_host host15 = host_of(SEGPUSH_ABI_MAJOR, 5);
    kit::Host current;
    CHECK(current.attach(&host15));

    {  // This host: every field fits; SUPPRESSED stays; release frees and zeroes.
        GuardedOutcomes out(sizeof(segpush_outcomes), sizeof(segpush_outcomes));
        kit::publish(sample_outcomes(), out.get(), current);
        CHECK(out.get()->struct_size == sizeof(segpush_outcomes));
        CHECK(out.get()->count == 3);
        CHECK(out.get()->items[0].record_id == 1);
        CHECK(out.get()->items[0].reason == nullptr);
        CHECK(out.get()->items[2].status == SEGPUSH_RECORD_SUPPRESSED);
        CHECK(std::strcmp(out.get()->items[2].reason, "unsubscribed from list 3") == 0);
        CHECK(out.get()->receipts != nullptr);
        CHECK(out.get()->receipts[0] == nullptr);
        CHECK(std::strcmp(out.get()->receipts[1], "batch-7") == 0);
        CHECK(out.get()->receipts[2] == nullptr);
        CHECK(out.get()->release != nullptr);
        out.get()->release(out.get());
        CHECK(out.get()->release == nullptr);
        CHECK(out.get()->items == nullptr && out.get()->receipts == nullptr && out.get()->count == 0);
        CHECK(out.canary_intact());
    }
    {  // Without receipts, receipts stays NULL.
        GuardedOutcomes out(sizeof(segpush_outcomes), sizeof(segpush_outcomes));
        auto list = std::make_unique<kit::OutcomeList>();
        list->add(9, SEGPUSH_RECORD_REJECTED, "no email");
        kit::publish(std::move(list), out.get(), current);
        CHECK(out.get()->receipts == nullptr);
        out.get()->release(out.get());
    }
    {  // Nothing to report: the struct stays zeroed, release NULL.
        GuardedOutcomes out(sizeof(segpush_outcomes), sizeof(segpush_outcomes));
        kit::publish(std::make_unique<kit::OutcomeList>(), out.get(), current);
        kit::publish(nullptr, out.get(), current);
        kit::publish(sample_outcomes(), nullptr, current);
        CHECK(out.get()->release == nullptr && out.get()->count == 0 && out.get()->items == nullptr);
    }
    {  // A 1.4 host leaves struct_size 0: set to its size; receipts fit; SUPPRESSED known.
        const segpush_host host14 = host_of(SEGPUSH_ABI_MAJOR, 4);
        kit::Host older;
        older.attach(&host14);
        GuardedOutcomes out(SEGPUSH_LEGACY_OUTCOMES_SIZE(4), 0);
        kit::publish(sample_outcomes(), out.get(), older);
        CHECK(out.get()->struct_size == SEGPUSH_LEGACY_OUTCOMES_SIZE(4));
        CHECK(out.get()->receipts != nullptr);
        CHECK(out.get()->items[2].status == SEGPUSH_RECORD_SUPPRESSED);
        out.get()->release(out.get());
        CHECK(out.canary_intact());
    }
    {  // A 1.3 host: receipts fit, SUPPRESSED becomes REJECTED with its reason.
        const segpush_host host13 = host_of(SEGPUSH_ABI_MAJOR, 3);
        kit::Host older;
        older.attach(&host13);
        GuardedOutcomes out(SEGPUSH_LEGACY_OUTCOMES_SIZE(3), 0);
        kit::publish(sample_outcomes(), out.get(), older);
        CHECK(out.get()->items[2].status == SEGPUSH_RECORD_REJECTED);
        CHECK(std::strcmp(out.get()->items[2].reason, "unsubscribed from list 3") == 0);
        CHECK(out.get()->receipts != nullptr);
        out.get()->release(out.get());
        CHECK(out.canary_intact());
    }
    {  // A 1.2 host's struct ends before receipts: nothing is written past it, even by release.
        const segpush_host host12 = host_of(SEGPUSH_ABI_MAJOR, 2);
        kit::Host older;
        older.attach(&host12);
        GuardedOutcomes out(SEGPUSH_LEGACY_OUTCOMES_SIZE(2), 0);
        kit::publish(sample_outcomes(), out.get(), older);
        CHECK(out.get()->struct_size == SEGPUSH_LEGACY_OUTCOMES_SIZE(2));
        CHECK(out.get()->count == 3);
        CHECK(out.canary_intact());
        out.get()->release(out.get());
        CHECK(out.canary_intact());
    }
    {  // A 1.5 host that says its struct is 1.2's size: the same.
        GuardedOutcomes out(SEGPUSH_LEGACY_OUTCOMES_SIZE(2), SEGPUSH_LEGACY_OUTCOMES_SIZE(2));
        kit::publish(sample_outcomes(), out.get(), current);
        CHECK(out.canary_intact());
        out.get()->release(out.get());
        CHECK(out.canary_intact());
    }
    {  // Receipts that start part-way stay parallel to the items; append copies texts.
        kit::OutcomeList first;
        first.add(1, SEGPUSH_RECORD_ACCEPTED);
        first.add(2, SEGPUSH_RECORD_ACCEPTED);
        first.add(3, SEGPUSH_RECORD_PENDING, "", "batch-1");
        first.add(4, SEGPUSH_RECORD_PENDING, "", "batch-1");
        first.add(5, SEGPUSH_RECORD_ACCEPTED);
        CHECK(first.size() == 5);
        CHECK(first.receipt(0) == nullptr && first.receipt(4) == nullptr);
        CHECK(first.receipt(2) == first.receipt(3));  // one copy for a run of the same receipt
        auto second = std::make_unique<kit::OutcomeList>();
        second->add(0, SEGPUSH_RECORD_REJECTED, "refused");
        second->append(first);
        first.clear();
        CHECK(second->size() == 6);
        CHECK(std::strcmp(second->receipt(3), "batch-1") == 0);
        GuardedOutcomes out(sizeof(segpush_outcomes), sizeof(segpush_outcomes));
        kit::publish(std::move(second), out.get(), current);
        CHECK(out.get()->receipts[0] == nullptr && out.get()->receipts[5] == nullptr);
        CHECK(std::strcmp(out.get()->receipts[4], "batch-1") == 0);
        CHECK(std::strcmp(out.get()->items[0].reason, "refused") == 0);
        out.get()->release(out.get());
    }
}

void host_services() {
    kit::Host none;
    CHECK(none.attach(nullptr));
    CHECK(!none.is_cancelled(nullptr));
    CHECK(none.abi_minor() == 0);
    CHECK(!none.speaks(0));
    none.log(SEGPUSH_LOG_INFO, "nowhere");
    none.progress(nullptr, 1);

    g_logged.clear();
    const segpush_host other_major = host_of(SEGPUSH_ABI_MAJOR + 1, 0);
    kit::Host refused;
    CHECK(!refused.attach(&other_major));
    CHECK(refused.get() == nullptr);
    CHECK(g_logged.size() == 1 && g_logged[0].find("major versions must match") != std::string::npos);

    const segpush_host host = host_of(SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR);
    kit::Host attached;
    CHECK(attached.attach(&host));
    CHECK(attached.speaks(SEGPUSH_ABI_MINOR) && !attached.speaks(SEGPUSH_ABI_MINOR + 1));
    CHECK(attached.is_cancelled(nullptr));
    attached.log(SEGPUSH_LOG_INFO, std::string("hello"));
    CHECK(g_logged.back() == "hello");
    attached.progress(nullptr, 5);  // the host offers no progress: nothing happens
}

void batches() {
    const uint64_t ids[] = {7};
    const segpush_value values[] = {{"a@example.com", 13}, {"Ada", 3}};
    segpush_batch batch{sizeof(segpush_batch), 2, 1, ids, values, SEGPUSH_ACTION_REMOVE, nullptr};
    CHECK(kit::action_of(batch) == SEGPUSH_ACTION_REMOVE);
    CHECK(kit::row_of(batch, 0)[1].size == 3);
    batch.struct_size = offsetof(segpush_batch, action);  // a 1.0 host's batch
    CHECK(kit::action_of(batch) == SEGPUSH_ACTION_UPSERT);
}

}  // namespace

int main() {
    errors();
    guard();
    outcomes();
    host_services();
    batches();
    if (g_failed) {
        std::fprintf(stderr, "kit_check: %d of %d checks failed\n", g_failed, g_checked);
        return 1;
    }
    std::printf("kit_check: all %d checks passed\n", g_checked);
    return 0;
}
