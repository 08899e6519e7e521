// gcs/: the group protocol's messages and persisted state (docs/gcs.md describes the protocol).
// Plain values: the state machine (gcs/member.hpp) consumes and produces them; the transport
// (gcs/wire.hpp) encodes them with Cap'n Proto.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tutti::gcs {

inline constexpr uint16_t kGcsProtocolVersion = 2;

using NodeId = std::string;
using Time = uint64_t;  // milliseconds, from the driver's clock (virtual in the simulator)

struct ViewKey {
  uint64_t epoch = 0;
  NodeId coordinator;
  auto operator<=>(const ViewKey&) const = default;
  bool operator==(const ViewKey&) const = default;
};

std::string to_string(const ViewKey& id);

// A view as installed. base: in a primary view, position p carries global seqno base + p.
struct ViewInfo {
  ViewKey id;
  std::vector<NodeId> members;  // sorted; the first is the coordinator and sequencer
  bool primary = false;
  uint64_t base = 0;
  // Members that entered this view needing a state transfer: they have no vote in it (etcd's
  // learners). A primary view needs a majority of its other members, the voters.
  std::vector<NodeId> learners;  // sorted
  bool operator==(const ViewInfo&) const = default;
  bool learner(const NodeId& n) const;
};

// One application message in the total order.
struct LogEntry {
  uint64_t seqno = 0;
  ViewKey view;
  NodeId sender;
  uint64_t sender_seq = 0;
  std::string payload;
};

// What a member keeps across a crash. The driver writes it as Ready says; a restarted member is
// built from it.
struct Durable {
  std::string history;                       // cluster history id; empty before joining one
  std::optional<ViewInfo> last_primary;      // persisted before anything is delivered in it
  std::optional<ViewInfo> last_committed;    // the last primary view this member saw committed
  std::optional<ViewInfo> previous_primary;  // the view last_primary continues
  std::vector<ViewKey> installs;  // the last primary installs persisted here, oldest first
  bool needs_transfer = false;    // joined last_primary without its earlier state
  uint64_t delivered = 0;         // highest seqno the application has applied
  ViewKey promised;               // highest proposal accepted: never go back to a lower one
  uint64_t incarnation = 0;       // bumped at every start: keeps sender_seqs unique
  std::map<NodeId, uint64_t> sender_high;  // highest sender_seq delivered, per sender
  std::map<uint64_t, LogEntry> log;        // seqno -> entry (a tentative tail may follow delivered)
};

// One message in the total order of the cluster history, as delivered to the application.
struct Delivery {
  uint64_t seqno = 0;
  NodeId origin;  // sender's uuid
  std::string payload;
  uint64_t sender_seq = 0;  // the sender's own numbering: (origin, sender_seq) names a message
  // Delivered as the next primary view is installed, completing the view it was sent in: every
  // member of the next view holds it, but a member of the earlier view that is not in the next
  // may never have had it. Otherwise it was stable: every member of its view held it.
  bool at_view_change = false;
};

struct Limits {
  size_t max_message_bytes = 32u << 20;
  size_t max_queued_messages = 65536;
  // Deliveries a Ready carries at most (at least one), by count and by payload bytes; the rest
  // follow in the next. A learner that ends its transfer holds every write-set the group ordered
  // meanwhile (hundreds of thousands in a 1 GiB join): delivered at once, they held its loop for
  // a second - its heartbeats too, so the group took it for dead - and made one batch of seconds
  // that every newer log entry waited behind.
  size_t max_ready_deliveries = 4096;
  size_t max_ready_delivery_bytes = 32u << 20;
};

enum class BroadcastError { none, not_primary, too_large, queue_full };

struct BroadcastResult {
  BroadcastError error = BroadcastError::none;
  std::string message;      // why, when error != none
  uint64_t sender_seq = 0;  // when accepted: the message's number from this sender
  bool ok() const { return error == BroadcastError::none; }
};

// ---- messages ----

struct Heartbeat {
  uint64_t held = 0;  // contiguous positions held in the sender's current view
  bool leaving = false;
  std::vector<NodeId> known;    // whom the sender knows: a joiner that knows one member meets all
  ViewKey promised;             // a view change the sender takes part in, if above its view
  bool idle = false;            // the sender (re)started and belongs to no view yet
  bool installed = false;       // the sender installed `promised` and waits for its Commit
  bool flow_pause = false;      // the sender asks the group to stop originating (flow control)
  bool needs_transfer = false;  // the sender waits for a state transfer (a learner till it ends)
  bool applying = false;  // a learner whose transfer ended and that still delivers what it logged
};
struct DataItem {
  uint64_t seq = 0;
  std::string payload;
};
struct Data {
  uint64_t lowest = 0;  // the sender's lowest own seq not yet delivered
  std::vector<DataItem> items;
};
struct OrderItem {
  uint64_t pos = 0;
  NodeId sender;
  uint64_t sender_seq = 0;
  std::string payload;
};
struct Order {
  std::vector<OrderItem> items;
};
struct Ack {
  uint64_t held = 0;
};
struct Propose {
  std::vector<NodeId> members;
};
struct StateReport {
  ViewInfo current;  // the view the member operates in (empty id: none)
  std::optional<ViewInfo> last_primary;
  std::optional<ViewInfo> last_committed;
  std::optional<ViewInfo> previous_primary;
  std::vector<ViewKey> installs;
  uint64_t lineage_held = 0;  // highest seqno held contiguously from last_primary.base
  uint64_t delivered = 0;
  bool needs_transfer = false;
  bool restarted = false;  // no view committed since it restarted: its log is what it persisted
};
struct Install {
  ViewInfo view;
  std::vector<NodeId> joiners;         // members that need a state transfer up to view.base
  std::optional<ViewKey> predecessor;  // the primary view this one continues
  std::optional<ViewInfo> predecessor_view;
  std::map<NodeId, uint64_t> delivered;  // each member's last delivered seqno, for transfers
};
struct Installed {};
struct Commit {};
// Sent outside the Ready, while the sender's batch is on its way to disk (its heartbeats wait
// with the rest of the batch): it only says the sender lives, and whether it asks the group to
// pause. It carries nothing that needs the disk, so it may overtake what the batch holds.
struct Alive {
  bool flow_pause = false;
};

struct Message {
  uint16_t version = kGcsProtocolVersion;
  NodeId from;
  std::string history;
  ViewKey view;  // the view (or proposal) the message belongs to
  std::variant<Heartbeat, Data, Order, Ack, Propose, StateReport, Install, Installed, Commit, Alive>
      body;
};

}  // namespace tutti::gcs
