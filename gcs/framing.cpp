#include "gcs/framing.hpp"

#include "gcs/invariant.hpp"

namespace tutti::gcs {

std::string frame(std::string_view payload) {
  TUTTI_INVARIANT(payload.size() <= UINT32_MAX, "a frame of {} bytes", payload.size());
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out(kFrameHeaderBytes, '\0');
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.append(payload);
  return out;
}

uint32_t frame_length(std::string_view header) {
  TUTTI_INVARIANT(header.size() >= kFrameHeaderBytes, "a frame header of {} bytes", header.size());
  uint32_t n = 0;
  for (size_t i = 0; i < kFrameHeaderBytes; ++i)
    n |= static_cast<uint32_t>(static_cast<unsigned char>(header[i])) << (8 * i);
  return n;
}

}  // namespace tutti::gcs
