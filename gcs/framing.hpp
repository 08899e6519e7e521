// The framing of both TCP protocols, the group's (gcs/transport.hpp) and the clients'
// (core/server.hpp): frame = u32 little-endian payload length | payload. One implementation for
// both, so they cannot drift apart. The limits on a length are each protocol's own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tutti::gcs {

inline constexpr size_t kFrameHeaderBytes = 4;

// A frame header followed by payload. REQUIRES: payload is shorter than 4 GiB.
std::string frame(std::string_view payload);
// Writes the header of the frame `buf` holds: its first kFrameHeaderBytes are the header's room,
// the rest the payload. REQUIRES: buf holds the room; the payload is shorter than 4 GiB.
void put_frame_header(std::string& buf);
// The payload length a frame header announces. REQUIRES: header holds kFrameHeaderBytes.
uint32_t frame_length(std::string_view header);

}  // namespace tutti::gcs
