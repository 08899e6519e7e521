// Persistence off the event loop (etcd raft's asynchronous storage writes): the node hands each
// batch of a Ready to a Persister, goes on taking messages and assembling the next batch, and
// carries out the rest of the batch - send, then answer - only when the Persister says it is on
// disk. One batch is in flight at a time, so batches reach the disk, and complete, in order.
//
// A batch is written by write_batch (one storage transaction: the log's changes, the certified
// deliveries, the member's durable state). ThreadPersister runs it on a storage thread for
// tuttid; InlinePersister at once, on the caller's thread (unit tests); the whole-node simulator
// has its own, whose latency is a simulated disk.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/applier.hpp"
#include "core/transfer.hpp"
#include "gcs/member.hpp"
#include "storage/store.hpp"

namespace tutti::core {

// Storage meta names the node keeps beside storage's own.
inline constexpr std::string_view kMetaGcsState = "gcs_state";
inline constexpr std::string_view kMetaGcsPeers = "gcs_peers";
inline constexpr std::string_view kMetaClusterName = "cluster_name";

struct PersistBatch {
  gcs::MemberReady ready;                 // its sends and events wait for the outcome
  std::optional<std::string> directory;   // the member directory to remember, encoded
  std::optional<TransferWrite> transfer;  // a joiner's state transfer, written after the rest
  // Written by a learner waiting for its transfer: its log holds back no delivery, and what it
  // acknowledged to the sequencer only tells that one what to send it again.
  bool learner = false;
  bool empty() const { return !ready.meta && !directory && !transfer; }
  // Records deliveries and changes of the log and nothing else: the log holds its entries
  // durably (in files of its own, storage/log.hpp), so the LMDB commit of the deliveries need not
  // wait for its meta page (storage::Store::Sync::data_only).
  bool log_and_deliveries_only() const { return !ready.durable_changed && !directory && !transfer; }
  // Whether a crash of the machine that undid the batch's LMDB commit would lose nothing another
  // node counts on, so that it need not wait for its meta page (storage::Store::Sync::data_only):
  // deliveries, which the log holds and the node delivers again; or a learner's snapshot chunks,
  // whose loss leaves it behind, as a learner may be, with a consistent prefix. (Not what changes
  // its durable state beyond that, or applies or installs a transfer.)
  bool meta_may_lag() const {
    if (log_and_deliveries_only()) return true;
    return learner && !ready.durable_changed && !directory &&
           (!transfer || transfer->kind == TransferWrite::Kind::stage);
  }
};

struct Certified {
  Decision decision;
  storage::ContentHash hash;  // of the data after this seqno (when asked for)
};

struct PersistResult {
  PersistBatch batch;
  bool ok = false;
  std::string error;                       // why not, when not ok; nothing of the batch was written
  std::vector<Certified> certified;        // one per delivery of the batch, in order
  std::optional<uint64_t> last_committed;  // the store's after the batch, when it wrote one
  TransferWritten transferred;             // what the transfer write did
  // Why the transfer write was refused as damaged (the stage's StorageError::Kind::corrupt): it
  // was not written; the rest of the batch was, when ok.
  std::string transfer_rejected;
  std::vector<Certified> transfer_certified;  // one per write-set it applied, in order
  storage::Clock::duration write_time{};
};

// Outcomes of this node's own write-sets that a batch decided and that may be told before its
// transaction commits (see decided_before_commit), in seqno order.
using Decided = std::function<void(std::vector<Decision>)>;
// The batch's log records are on disk and the rest of it (its LMDB commit) is under way: for a
// batch that records deliveries and log entries alone (log_and_deliveries_only), whose messages
// (acknowledgements, heartbeats: what this member holds) speak of its log alone.
using Logged = std::function<void()>;

// Whether the outcome of a delivery may be told before the batch that applies it is on disk: when
// its write-set was on this node's disk before the batch. Then every voter's log holds it (each
// acknowledges a position only once it is on its disk, and it was delivered because every voter
// did), so after any crash the group delivers it again, in the same place, and certification - a
// function of that order alone - decides it the same way: the answer cannot be undone. A
// write-set appended in the same batch, or delivered at a view change, waits for the commit.
bool decided_before_commit(const gcs::MemberReady& ready, const gcs::Delivery& delivery);

// Writes the batch in one storage transaction and certifies its deliveries. Throws what the store
// throws; then nothing was written. node_uuid: the node's identity, kept with the history.
// decided, when given, is called once with the outcomes decided_before_commit allows (perhaps
// none), after certification and before the commit (the same however often the store runs it).
std::vector<Certified> write_batch(storage::Store& store, const std::string& node_uuid,
                                   const PersistBatch& batch, bool with_hashes,
                                   TransferWritten* transferred = nullptr,
                                   std::vector<Certified>* transfer_certified = nullptr,
                                   std::optional<uint64_t>* last_committed = nullptr,
                                   const Decided* decided = nullptr,
                                   const Logged* logged = nullptr);

// Runs write_batch and fills in the result, catching its failure.
// logged, when given, is called once the batch's log is on disk, if the batch is
// log_and_deliveries_only (not at all otherwise, or when the log's write fails).
PersistResult persist(storage::Store& store, const std::string& node_uuid, PersistBatch batch,
                      bool with_hashes, const Decided* decided = nullptr,
                      const Logged* logged = nullptr);

class Persister {
 public:
  using Done = std::function<void(PersistResult)>;
  virtual ~Persister() = default;
  // Persists the batch and calls done with the result on the node's thread. decided, when this
  // persister tells outcomes early, is called on the node's thread before done (not at all when
  // the batch decided nothing early); so is logged, when it tells that (persist). REQUIRES: the
  // previous batch's done has run.
  virtual void submit(PersistBatch batch, bool with_hashes, Done done, Decided decided,
                      Logged logged) = 0;
};

class InlinePersister final : public Persister {
 public:
  InlinePersister(storage::Store& store, std::string node_uuid)
      : store_(store), node_uuid_(std::move(node_uuid)) {}
  // Tells nothing early: done follows at once.
  void submit(PersistBatch batch, bool with_hashes, Done done, Decided decided,
              Logged logged) override;

 private:
  storage::Store& store_;
  std::string node_uuid_;
};

// Two storage threads, one batch in flight between them: a batch that carries a state transfer's
// write (megabytes of a snapshot) is written by a thread at background priority, every other by
// one at the node's own, so a joiner's transfer takes no turns of a core that the group's threads
// want (core/thread_priority.hpp). post runs a function on the node's thread (asio::post to its
// io_context). The destructor waits for the batch being written; its done is then posted like any
// other.
//
// group_inline: the group's batches of up to 256 entries (appends and events) are written on the
// caller's thread, at once, as by InlinePersister (for memory durability, whose commits never
// wait for the disk: the two trips between threads cost more than the write); bigger ones and
// transfer batches still go to their threads.
class ThreadPersister final : public Persister {
 public:
  ThreadPersister(storage::Store& store, std::string node_uuid,
                  std::function<void(std::function<void()>)> post, bool group_inline = false);
  ~ThreadPersister() override;
  void submit(PersistBatch batch, bool with_hashes, Done done, Decided decided,
              Logged logged) override;

 private:
  struct Job {
    PersistBatch batch;
    bool with_hashes;
    Done done;
    Decided decided;
    Logged logged;
  };
  struct Lane {
    std::condition_variable wake;
    std::optional<Job> job;
    std::thread thread;
  };
  void run(Lane& lane);

  storage::Store& store_;
  std::string node_uuid_;
  std::function<void(std::function<void()>)> post_;
  bool group_inline_;
  std::mutex mu_;
  bool in_flight_ = false;  // one batch at a time, in either lane: the queue is bounded
  bool stopping_ = false;
  Lane group_, transfer_;  // last: their threads start once the rest is built
};

}  // namespace tutti::core
