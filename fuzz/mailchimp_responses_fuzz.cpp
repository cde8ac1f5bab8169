// libFuzzer target for the Mailchimp plugin's response parsing
// (plugins/mailchimp/responses.cpp, compiled in directly). Every parser takes any bytes a
// server or a proxy might send; none may crash, leak or hit undefined behaviour.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "responses.hpp"

namespace mc = segpush::mailchimp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider input(data, size);
    const std::string time_text = input.ConsumeRandomLengthString(64);
    const std::string status = input.ConsumeRandomLengthString(32);
    const std::string body = input.ConsumeRemainingBytesAsString();

    (void)mc::parse_problem(body);
    if (mc::problem_text(body).size() > 2048) std::abort();  // "cut to a sensible length"
    (void)mc::kept_out_status(status);

    const mc::BatchAnswer batch = mc::parse_batch_answer(body);
    if (!batch.ok && !(batch.created.empty() && batch.updated.empty() && batch.errors.empty())) std::abort();

    (void)mc::parse_member(body);
    (void)mc::parse_list(body);
    (void)mc::parse_merge_fields(body);
    (void)mc::parse_time(time_text);
    (void)mc::parse_time(body);
    return 0;
}
