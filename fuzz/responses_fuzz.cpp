// libFuzzer target for the ActiveCampaign plugin's response parsing
// (plugins/activecampaign/responses.cpp, compiled in directly). Every parser takes any bytes
// a server or a proxy might send; none may crash, leak or hit undefined behaviour.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "responses.hpp"

namespace ac = segpush::activecampaign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    const long status = input.ConsumeIntegralInRange<long>(0, 599);
    // The plugin passes time(nullptr): any moment from 1970 to 2100.
    const int64_t now = input.ConsumeIntegralInRange<int64_t>(0, 4102444800);
    const size_t contacts = input.ConsumeIntegralInRange<size_t>(0, 300);
    const std::string header = input.ConsumeRandomLengthString(64);
    const std::string email = input.ConsumeRandomLengthString(64);
    const std::string body = input.ConsumeRemainingBytesAsString();

    if (auto ms = ac::parse_retry_after(header, now); ms && *ms > 3600u * 1000u) std::abort();  // capped at an hour
    (void)ac::parse_retry_after(body, now);

    const std::string text = ac::error_text(body);
    if (text.size() > 1024) std::abort();  // "capped in length"

    ac::BulkAnswer answer = ac::parse_bulk_answer(status, body);
    std::vector<std::string> emails(contacts);
    for (size_t i = 0; i < contacts; ++i) emails[i] = i % 2 ? email : "c" + std::to_string(i) + "@example.com";
    const auto match = ac::match_failures(answer.failures, emails);
    std::vector<bool> seen(contacts);
    for (const auto& [position, reason] : match.refused) {
        if (position >= contacts || seen[position]) std::abort();  // in the request, each once
        seen[position] = true;
    }
    for (size_t position : match.suspects) {
        if (position >= contacts || seen[position]) std::abort();  // a refused contact is no suspect
    }

    (void)ac::parse_ac_time(header);
    (void)ac::parse_contacts_page(body);
    const auto state = ac::parse_contact_state(body);
    (void)ac::decide_restore(state, 3, now, 120);

    (void)ac::parse_import_info(body);
    (void)ac::nested_id(body, "contact");
    (void)ac::nested_id(body, "contactList");
    (void)ac::contact_id_with_email(body, email);
    (void)ac::parse_fields_page(body);
    (void)ac::mentions_missing_list(body);
    return 0;
}
