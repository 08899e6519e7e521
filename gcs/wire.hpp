// Cap'n Proto encoding of the gcs messages, the link frames between members, and what a member
// persists (gcs/protocol/gcs.capnp). Decoders treat their input as hostile: every failure is a
// WireError, never a crash.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gcs/messages.hpp"

namespace tutti::gcs {

class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint16_t kLogFormatVersion = 1;

// A member as the directory knows it.
struct PeerInfo {
  NodeId uuid;
  std::string name;
  std::string gcs_addr;
  std::string client_addr;
  std::string state;  // JOINING, JOINED, SYNCED, DONOR
  uint64_t last_committed = 0;
  bool operator==(const PeerInfo&) const = default;
};

struct Hello {
  uint16_t protocol_version = kGcsProtocolVersion;
  std::string cluster_name;
  std::string history;
  PeerInfo self;
};

struct Welcome {
  uint16_t protocol_version = kGcsProtocolVersion;
  bool accepted = false;
  std::string reason;
  PeerInfo self;
  std::string history;
  std::string cluster_name;
  bool primary = false;
};

using Directory = std::vector<PeerInfo>;
using Frame = std::variant<Hello, Welcome, Directory, Message>;

std::string encode_frame(const Frame& frame);
Frame decode_frame(std::string_view bytes);

std::string encode_log_entry(const LogEntry& entry);
LogEntry decode_log_entry(std::string_view bytes);

// The durable state but its log.
std::string encode_durable(const Durable& durable);
Durable decode_durable(std::string_view bytes);

}  // namespace tutti::gcs
