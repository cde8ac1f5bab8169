// MD5 (RFC 1321), for Mailchimp's member ids only: a member's URL names it by the MD5 of its
// lower-cased email. Not for anything that needs a secure hash.
#pragma once

#include <string>
#include <string_view>

namespace segpush::mailchimp {

// The 32 lower-case hex digits of MD5(data).
std::string md5_hex(std::string_view data);

}  // namespace segpush::mailchimp
