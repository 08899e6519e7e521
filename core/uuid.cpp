#include "core/uuid.hpp"

#include <fmt/format.h>

namespace tutti::core {

std::string random_uuid(storage::Env& env) {
  std::string out(16, '\0');
  env.random_bytes(out.data(), out.size());
  out[6] = static_cast<char>((out[6] & 0x0f) | 0x40);  // version 4
  out[8] = static_cast<char>((out[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return out;
}

std::string random_uuid() {
  return random_uuid(storage::default_env());
}

std::string uuid_text(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes.size() == 16 && (i == 4 || i == 6 || i == 8 || i == 10)) out += '-';
    out += fmt::format("{:02x}", static_cast<uint8_t>(bytes[i]));
  }
  return out;
}

}  // namespace tutti::core
