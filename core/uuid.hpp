#pragma once

#include <string>
#include <string_view>

namespace tutti::core {

// 16 random bytes (RFC 4122 version 4 layout).
std::string random_uuid();
// The canonical 8-4-4-4-12 text of 16 bytes; "" for an empty id.
std::string uuid_text(std::string_view bytes);

}  // namespace tutti::core
