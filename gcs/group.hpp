// gcs/: the group communication interface the core replicates through (DESIGN.md §5).
//
// A Group is a pure state machine: the driver feeds it local requests (broadcast) and, in later
// implementations, received messages and clock ticks; it answers with a Ready batch that says what
// to persist, then what to deliver. The driver must make every entry of Ready::persist durable
// (fsync durability) before anything it sends afterwards acknowledges it; deliveries may be
// applied in the same storage transaction as that persist. Then it calls advance().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tutti::gcs {

struct MemberInfo {
  std::string uuid;  // 16 bytes
  std::string name;
  bool operator==(const MemberInfo&) const = default;
};

struct ViewId {
  uint64_t epoch = 0;
  std::string coordinator;  // uuid of the coordinator
  bool operator==(const ViewId&) const = default;
};

struct View {
  ViewId id;
  std::vector<MemberInfo> members;
  bool primary = false;
};

// One message in the total order of the cluster history.
struct Delivery {
  uint64_t seqno = 0;
  std::string origin;  // sender's uuid
  std::string payload;
  uint64_t sender_seq = 0;  // the sender's own numbering: (origin, sender_seq) names a message
};

struct Ready {
  std::vector<Delivery> persist;  // append to the write-set log, in order
  std::vector<Delivery> deliver;  // in seqno order, after persist
  std::optional<View> view;       // a view installed before these deliveries
  bool empty() const { return persist.empty() && deliver.empty() && !view; }
};

struct Limits {
  size_t max_message_bytes = 32u << 20;
  size_t max_queued_messages = 65536;
};

enum class BroadcastError { none, not_primary, too_large, queue_full };

struct BroadcastResult {
  BroadcastError error = BroadcastError::none;
  std::string message;      // why, when error != none
  uint64_t sender_seq = 0;  // when accepted: the message's number from this sender
  bool ok() const { return error == BroadcastError::none; }
};

class Group {
 public:
  virtual ~Group() = default;
  virtual BroadcastResult broadcast(std::string payload) = 0;
  virtual const View& view() const = 0;
  virtual bool has_ready() const = 0;
  virtual Ready ready() = 0;
  // persisted = false: the driver could not persist the batch; nothing of it was delivered.
  virtual void advance(const Ready& ready, bool persisted) = 0;
};

}  // namespace tutti::gcs
