// Cap'n Proto encoding of core/messages.hpp, and the frame format of the client protocol:
//   frame = u32 little-endian payload length | payload (a Cap'n Proto message, flat array)
// Decoders treat their input as hostile: every failure is a DecodeError, never a crash.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/messages.hpp"
#include "gcs/framing.hpp"

namespace tutti::core {

class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when a message decodes but speaks a version this build does not.
class VersionError : public DecodeError {
 public:
  using DecodeError::DecodeError;
};

std::string encode_request(const Request& request);
Request decode_request(std::string_view payload);
std::string encode_response(const Response& response);
// A whole frame (header and payload) in one buffer, built with one copy of the body's bytes; an
// EncodedReply is its frame already.
std::string encode_response_frame(Response response);
Response decode_response(std::string_view payload);

std::string encode_writeset(const WriteSet& ws);
WriteSet decode_writeset(std::string_view bytes);

std::string encode_outcome(const Outcome& outcome);
Outcome decode_outcome(std::string_view bytes);

std::string encode_snapshot_resume(const SnapshotResume& r);
SnapshotResume decode_snapshot_resume(std::string_view bytes);

// The frames are gcs/framing.hpp's.
using gcs::frame;
using gcs::frame_length;
using gcs::kFrameHeaderBytes;

}  // namespace tutti::core
