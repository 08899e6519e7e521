// A tutti node's replication logic: client requests in, write-sets through the group, certified
// deliveries applied to storage, replies out (DESIGN.md §2). No sockets or timers here: the
// server (core/server.hpp) feeds it requests, the driver (tuttid) feeds the group messages and
// ticks, and flush() carries out what the group has ready: persist, then send, then answer.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/applier.hpp"
#include "core/messages.hpp"
#include "core/persister.hpp"
#include "gcs/group.hpp"
#include "gcs/wire.hpp"
#include "storage/store.hpp"

namespace tutti::core {

struct NodeLimits {
  size_t max_key_bytes = storage::kMaxKeyBytes;  // at most that: the store holds no longer key
  size_t max_value_bytes = 1u << 20;
  size_t max_txn_id_bytes = 128;
  size_t max_writeset_bytes = 16u << 20;
  uint32_t max_scan_entries = 100000;
  size_t max_scan_reply_bytes = 16u << 20;
  size_t max_waiting_reads = 65536;
  size_t max_view_watchers = 1024;
  // Flow control: past this many write-sets waiting to be persisted at once, or when writing a
  // batch takes longer than flow_pause_write_time, the node asks the group to pause.
  size_t flow_pause_backlog = 4096;
  std::chrono::milliseconds flow_pause_write_time{500};
};

enum class NodeState { joining, joined, synced, donor };
const char* to_string(NodeState state);

using ReplyFn = std::function<void(Response)>;

// Storage meta names the node keeps beside storage's own.
inline constexpr std::string_view kMetaGcsState = "gcs_state";
inline constexpr std::string_view kMetaGcsPeers = "gcs_peers";
inline constexpr std::string_view kMetaClusterName = "cluster_name";

// What a member persisted, as the group protocol needs it at a restart: its durable state and the
// tentative tail of its log (beyond what it applied).
gcs::Durable load_durable(const storage::Store& store);

// What a node applied and installed, in delivery order, reported once it is durable. For the
// whole-node simulator's checks and traces; tuttid sets no observer.
struct Applied {
  const gcs::Delivery& delivery;
  const Decision& decision;
  const storage::ContentHash& content_hash;  // of the data after this seqno
};
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  virtual void applied(const Applied& a) = 0;
  virtual void view_installed(const gcs::ViewEvent& v) = 0;
};

class Node {
 public:
  // request_flush is called (at most once until flush() runs) when the group has work ready.
  // directory: the members the transport knows of (names, addresses, reported progress).
  // persister: where batches go to disk (nullptr: at once, on this thread).
  Node(std::string name, storage::Store& store, gcs::Group& group, NodeLimits limits,
       std::function<void()> request_flush, std::function<gcs::Directory()> directory = {},
       Persister* persister = nullptr);

  void handle(Request request, ReplyFn reply);
  // Hands what the group has ready to the persister, unless a batch is on its way to disk
  // already; once it is durable, its messages go out and what it decided is answered.
  void flush();
  // The group received a message or a tick: flush when it has something ready.
  void group_changed();
  // The directory of members changed: persisted with the next flush.
  void directory_changed();
  // A state transfer put the store at seqno, with sender_high the highest sender_seq applied
  // per sender: the group delivers from seqno + 1 on.
  // REQUIRES: the store's last_committed is seqno; no batch is on its way to disk
  // (idle_for_transfer()), or that batch, assembled before the transfer, would undo it.
  void transfer_done(uint64_t seqno, const std::map<gcs::NodeId, uint64_t>& sender_high);
  bool idle_for_transfer() const { return !persisting_; }

  // REQUIRES: observer outlives the node, or is reset to nullptr first.
  void set_observer(NodeObserver* observer) { observer_ = observer; }

  StatusReply status() const;
  MembersReply members() const;
  NodeState state() const;
  uint64_t last_committed() const { return last_committed_; }
  const std::string& name() const { return name_; }

 private:
  struct Waiter {
    uint64_t request_id;
    ReplyFn reply;
  };
  struct PendingRead {
    Request request;
    ReplyFn reply;
  };

  void get(uint64_t id, const GetRequest& req, const ReplyFn& reply);
  void scan(uint64_t id, const ScanRequest& req, const ReplyFn& reply);
  void read_after_marker(Request request, ReplyFn reply);
  void send_marker();
  void serve_marked_reads();
  void fail_reads(const ErrorReply& error);
  void commit(uint64_t id, CommitRequest req, ReplyFn reply);
  void watch_views(uint64_t id, uint64_t after, ReplyFn reply);
  std::optional<ErrorReply> validate(const CommitRequest& req) const;
  std::optional<ErrorReply> validate_key(std::string_view key) const;
  std::optional<ErrorReply> check_writable(size_t payload_bytes) const;
  uint64_t free_bytes(uint64_t reserve) const;
  bool stale(Consistency consistency) const;
  std::string not_primary_reason() const;
  std::string waiting_for() const;
  bool primary() const;
  void persisted(PersistResult result);
  // applied: the last seqno applied before this batch.
  void after_persist(std::vector<gcs::Event> events, std::vector<Certified> certified,
                     uint64_t applied);
  void on_view(const gcs::ViewEvent& event);
  void answer_views();
  void adjust_flow(size_t backlog, std::chrono::steady_clock::duration write_time);
  void schedule_flush();
  std::string member_name(const gcs::NodeId& id) const;

  std::string name_;
  storage::Store& store_;
  gcs::Group& group_;
  NodeLimits limits_;
  std::function<void()> request_flush_;
  std::function<gcs::Directory()> directory_;
  std::unique_ptr<Persister> own_persister_;  // when none was given
  Persister* persister_;
  bool persisting_ = false;  // a batch is on its way to disk
  NodeObserver* observer_ = nullptr;
  bool flush_requested_ = false;
  bool directory_dirty_ = false;
  std::string node_uuid_;
  uint64_t last_committed_ = 0;
  bool flow_paused_ = false;     // this node asks the group to pause
  bool paused_in_view_ = false;  // it did so in the current view
  std::optional<gcs::ViewKey> last_primary_view_;
  std::chrono::steady_clock::time_point pause_until_;
  std::vector<gcs::NodeId> pausing_;  // members holding the group paused, last seen
  std::string persist_error_;         // why the last persist failed; empty once one succeeds
  std::chrono::steady_clock::time_point persist_failed_at_;
  mutable uint64_t free_cache_ = 0;  // free bytes on the data dir's disk, as last estimated
  mutable std::chrono::steady_clock::time_point free_checked_at_;

  // Commits broadcast by this node that await their delivery, by transaction id.
  struct InFlight {
    uint64_t fingerprint = 0;  // of the reads and writes: a reused id is told from a retry
    std::vector<Waiter> waiters;
  };
  std::unordered_map<std::string, InFlight> waiting_;

  // Linearizable reads in a group of several: served once a marker this node sends through the
  // total order comes back applied. Reads that arrive while a marker is out wait for the next.
  std::vector<PendingRead> reads_next_;
  std::vector<PendingRead> reads_marked_;
  uint64_t marker_seq_ = 0;
  std::string marker_out_;  // the txn id of the marker in flight, empty when none

  // View changes installed since the node started, the latest few, for `gcs-tool watch`.
  std::deque<ViewChange> views_;
  uint64_t view_count_ = 0;
  std::vector<std::pair<Waiter, uint64_t>> view_watchers_;
};

}  // namespace tutti::core
