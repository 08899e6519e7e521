#include "gcs/framing.hpp"

#include "gcs/invariant.hpp"

namespace tutti::gcs {

std::string frame(std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeaderBytes + payload.size());
  out.resize(kFrameHeaderBytes);
  out.append(payload);
  put_frame_header(out);
  return out;
}

void put_frame_header(std::string& buf) {
  TUTTI_INVARIANT(buf.size() >= kFrameHeaderBytes, "a frame of {} bytes has no header's room",
                  buf.size());
  const size_t payload = buf.size() - kFrameHeaderBytes;
  TUTTI_INVARIANT(payload <= UINT32_MAX, "a frame of {} bytes", payload);
  const auto n = static_cast<uint32_t>(payload);
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) buf[i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

uint32_t frame_length(std::string_view header) {
  TUTTI_INVARIANT(header.size() >= kFrameHeaderBytes, "a frame header of {} bytes", header.size());
  uint32_t n = 0;
  for (size_t i = 0; i < kFrameHeaderBytes; ++i)
    n |= static_cast<uint32_t>(static_cast<unsigned char>(header[i])) << (8 * i);
  return n;
}

}  // namespace tutti::gcs
