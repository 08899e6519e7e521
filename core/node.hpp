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

#include "core/admission.hpp"
#include "core/applier.hpp"
#include "core/flow_control.hpp"
#include "core/marked_reads.hpp"
#include "core/messages.hpp"
#include "core/persister.hpp"
#include "core/transfer.hpp"
#include "core/view_history.hpp"
#include "gcs/group.hpp"
#include "gcs/wire.hpp"
#include "storage/store.hpp"

namespace tutti::core {

enum class NodeState { joining, joined, synced, donor };
const char* to_string(NodeState state);
// A view as operators see it named: epoch.coordinator-uuid-prefix.
std::string view_text(const gcs::ViewKey& id);
// After a failed persist, the node tries again this often.
inline constexpr std::chrono::milliseconds kPersistRetry{200};
// A learner still waiting for its transfer writes what the group sends it at most this often.
// Its log holds back no delivery (its acknowledgements gate nothing), so a few bigger batches
// serve as well as many small ones, and cost the voters far less of the disk and cores they may
// share with it (a flush and two wake-ups of a thread per batch).
inline constexpr std::chrono::milliseconds kLearnerBatchInterval{10};

// What a member persisted, as the group protocol needs it at a restart: its durable state and the
// tentative tail of its log (beyond what it applied).
gcs::Durable load_durable(const storage::Store& store);

// What a node applied and installed, in delivery order, reported once it is durable. For the
// whole-node simulator's checks and traces; tuttid sets no observer.
struct Applied {
  const gcs::Delivery& delivery;
  const Decision& decision;
  const storage::ContentHash& content_hash;  // of the data after this seqno
  bool by_transfer = false;                  // applied by an incremental state transfer
};
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  virtual void applied(const Applied& a) = 0;
  virtual void view_installed(const gcs::ViewEvent& v) = 0;
  // A snapshot transfer made the store the state after seqno, with this content hash; carried:
  // it carried forward part of an earlier snapshot staged here (storage::Reconcile).
  virtual void snapshot_installed(uint64_t seqno, const storage::ContentHash& hash, bool carried) {
    (void)seqno, (void)hash, (void)carried;
  }
};

// How a joiner's pulls reach a donor: send the request to the donor's client port and call done
// with its answer on the node's thread, or with nullopt when none came (unreachable, broken,
// timed out). tuttid: a client connection on a thread of its own; the simulator: its network.
using TransferLink = std::function<void(const gcs::NodeId& donor, Request request,
                                        std::function<void(std::optional<Response>)> done)>;

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
  // False (and nothing changed) when the group moved on meanwhile: a primary view further on
  // is where the transfer must reach.
  bool transfer_done(uint64_t seqno, const std::map<gcs::NodeId, uint64_t>& sender_high);
  bool idle_for_transfer() const { return !persisting_; }
  // Where the state transfer's pulls go (none: this node never catches up by itself), and the
  // members to ask first. REQUIRES: before the first view.
  void set_transfer_link(TransferLink link, std::vector<std::string> preferred_donors = {});
  // Where the donor's reads run (tuttid: a WorkerThread): work off the loop, then done on
  // it; false when it cannot take more. None: on the loop, at once (the simulator).
  using DonorOffload = std::function<bool(std::function<void()> work, std::function<void()> done)>;
  void set_donor_offload(DonorOffload offload) { donor_offload_ = std::move(offload); }
  // Time passes: transfers time out, retry, report progress. The driver calls it with its ticks.
  void tick();

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

  void get(uint64_t id, const GetRequest& req, const ReplyFn& reply);
  void scan(uint64_t id, const ScanRequest& req, const ReplyFn& reply);
  void read_after_marker(Request request, ReplyFn reply);
  void send_marker();
  void serve(std::vector<MarkedReads::Read> reads);
  void fail_reads(const ErrorReply& error);
  void commit(uint64_t id, CommitRequest req, ReplyFn reply);
  std::optional<ErrorReply> check_writable(size_t payload_bytes) const;
  bool stale(Consistency consistency) const;
  std::string not_primary_reason() const;
  std::string waiting_for() const;
  bool primary() const;
  void persisted(PersistResult result);
  void batch_done(PersistResult result);
  void decided(std::vector<Decision> early);
  void logged();
  void answer(const Decision& decision);
  // A read served from this node's snapshot: after the batch in flight when it told outcomes
  // the snapshot does not show yet.
  void read_now(Request request, ReplyFn reply);
  // applied: the last seqno applied before this batch.
  void after_persist(std::vector<gcs::Event> events, std::vector<Certified> certified,
                     uint64_t applied);
  void on_view(const gcs::ViewEvent& event);
  void adjust_flow(size_t backlog, std::chrono::steady_clock::duration write_time);
  void serve_transfer(uint64_t id, const TransferRequest& t, const ReplyFn& reply);
  void start_transfer(const gcs::ViewEvent& ev);
  void finish_transfer();
  std::optional<SnapshotResume> staged_snapshot();
  void joiner_flow();
  // What a joiner logged from the group for its transfer, and its bounds.
  struct Backlog {
    size_t count, bytes, max_count, max_bytes;
    // Past 1/fraction of either bound.
    bool over(size_t fraction) const {
      return count * fraction > max_count || bytes * fraction > max_bytes;
    }
  };
  Backlog joiner_backlog() const;
  void pace_transfer(const Backlog& backlog);
  void pull();
  void after_transfer_write(PersistResult& r);
  std::optional<ErrorReply> catching_up() const;
  std::optional<ErrorReply> holds_no_state() const;
  void schedule_flush();
  void keep_alive(storage::Clock::time_point now);
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
  // Its messages, which leave once its log is on disk (Logged), or with its outcome.
  std::vector<std::pair<gcs::NodeId, gcs::Message>> logged_sends_;
  // Linearizable reads of a node alone in its view, waiting for what it delivered to be applied.
  std::vector<MarkedReads::Read> alone_reads_;
  bool told_early_ = false;  // ... and this node answered commits it applies (decided)
  std::vector<MarkedReads::Read> after_commit_;   // snapshot reads waiting for that batch
  storage::Clock::time_point persist_started_{};  // ... since then
  size_t persist_backlog_ = 0;                    // ... with this many write-sets
  storage::Clock::time_point alive_sent_{};       // the last Alive (keep_alive)
  NodeObserver* observer_ = nullptr;
  bool flush_requested_ = false;
  bool directory_dirty_ = false;
  std::string node_uuid_;
  uint64_t last_committed_ = 0;
  FlowControl flow_;
  bool paused_in_view_ = false;  // this node asked the group to pause in the current view
  std::optional<gcs::ViewKey> last_primary_view_;
  std::vector<gcs::NodeId> pausing_;  // members holding the group paused, last seen
  std::string persist_error_;         // why the last persist failed; empty once one succeeds
  std::chrono::steady_clock::time_point persist_failed_at_;
  mutable FreeSpace free_space_;

  // Commits broadcast by this node that await their delivery, by transaction id.
  struct InFlight {
    uint64_t fingerprint = 0;  // of the reads and writes: a reused id is told from a retry
    std::vector<Waiter> waiters;
  };
  std::unordered_map<std::string, InFlight> waiting_;

  MarkedReads reads_;  // linearizable reads waiting for a marker
  ViewHistory views_;

  // State transfer: this node as a joiner (while it catches up) and as a donor.
  TransferLink link_;
  std::vector<std::string> preferred_donors_;  // names
  std::unique_ptr<Joiner> joiner_;
  Donor donor_;
  DonorOffload donor_offload_;
  uint64_t link_epoch_ = 0;      // a joiner's answers from before it was replaced are dropped
  bool backlog_paused_ = false;  // a joiner past max_joiner_backlog asks the group to pause
  // A joiner's view of the group's load: its backlog grew at group_busy_at_ (pace_transfer).
  static constexpr std::chrono::milliseconds kBusyLately{1000};
  size_t backlog_seen_ = 0;
  storage::Clock::time_point group_busy_at_{};
};

}  // namespace tutti::core
