#include "core/uuid.hpp"

#include <random>

#include <fmt/format.h>

namespace tutti::core {

std::string random_uuid() {
  std::random_device rd;
  std::string out(16, '\0');
  for (size_t i = 0; i < out.size(); i += 4) {
    const uint32_t r = rd();
    for (size_t j = 0; j < 4; ++j) out[i + j] = static_cast<char>((r >> (8 * j)) & 0xff);
  }
  out[6] = static_cast<char>((out[6] & 0x0f) | 0x40);
  out[8] = static_cast<char>((out[8] & 0x3f) | 0x80);
  return out;
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
