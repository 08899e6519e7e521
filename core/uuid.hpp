#pragma once

#include <string>
#include <string_view>

#include "storage/env.hpp"

namespace tutti::core {

// A version-4 uuid (RFC 4122 layout), 16 bytes, from env's randomness (the default: the OS's).
std::string random_uuid(storage::Env& env);
std::string random_uuid();
// The canonical 8-4-4-4-12 text of 16 bytes; "" for an empty id.
std::string uuid_text(std::string_view bytes);

}  // namespace tutti::core
