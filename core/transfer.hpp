// State transfer (docs/transfer.md): how a node that is behind the group catches up.
//
// The joiner pulls, one request at a time, from a donor (a voting member of its view):
//   incremental - the write-sets it misses, from the donor's write-set log, applied through
//                 the same certification and apply as live deliveries;
//   snapshot    - when no donor's log covers what it misses: the donor's state tables from one
//                 read transaction (the donor goes on writing), staged beside the joiner's own
//                 state, checked against the snapshot's content hash, installed by one swap; then
//                 incrementally what the group delivered between the snapshot and the view's base.
// Both halves are decisions over the messages and the time passed in: the node carries out what
// they say (sends through its TransferLink, writes through its Persister), so tuttid and the
// simulator run the same code.
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/messages.hpp"
#include "gcs/messages.hpp"
#include "storage/store.hpp"

namespace tutti::core {

using Clock = storage::Clock;

inline constexpr uint32_t kTransferChunkBytes = 4u << 20;  // the most a donor sends at once
// Chunks that arrived and wait for their write (besides the one being written) before the
// joiner stops pulling: one more than the writer holds, so that the next pull's round trip
// (the donor's read, both copies through the kernel) overlaps a write instead of following it.
inline constexpr size_t kMaxPendingWrites = 2;
// A pull unanswered this long is given up and the joiner turns to another donor.
inline constexpr std::chrono::milliseconds kTransferTimeout{10000};
// A donor that failed a joiner is not asked again for this long (unless it is the only one).
inline constexpr std::chrono::milliseconds kDonorBackoff{3000};
// A snapshot session unpulled this long is dropped (its joiner died or moved on).
inline constexpr std::chrono::milliseconds kSessionIdle{30000};
inline constexpr size_t kMaxSnapshotSessions = 4;
// A snapshot pull that got no answer is tried again in the same session this soon, as long as
// the donor may still hold it (kSessionIdle) and is in the view.
inline constexpr std::chrono::milliseconds kResumeRetry{1000};
// A snapshot's donor missing from the view this long is given up (the snapshot starts over).
inline constexpr std::chrono::milliseconds kDonorGone{5000};
// Where a joiner's snapshot stands, in its meta (SnapshotResume), written with each staged chunk.
inline constexpr std::string_view kMetaSnapshotResume = storage::kMetaSnapshotResume;
// Progress is logged this often on both sides.
inline constexpr std::chrono::milliseconds kProgressEvery{5000};

// What of a snapshot's stream has come, per state table: the bytes of its keys and values.
struct SnapshotTally {
  std::array<uint64_t, storage::kStateTables> bytes{};
  void add(const storage::TableItem& item);
  uint64_t total() const;
};

// The snapshot's size in the bytes its stream carries: exact for the tables behind the cursor
// (what came of them); the others at what their pages take, above what they carry (page headers
// and slack: a few percent for large values, up to half for small ones), or what came of them if
// more. So the estimate only falls, each time a table is done, and ends equal to what came.
// (Extrapolating from the entries seen so far misled: a table's key order need not mix its
// sizes.) Without the donor's table sizes (none in the header): its page total.
uint64_t estimate_snapshot_bytes(const SnapshotChunk& header, const storage::SnapshotCursor& cursor,
                                 const SnapshotTally& got);

// What a joiner's next batch writes: applied write-sets, staged snapshot entries, or the
// install of a whole staged snapshot.
struct TransferWrite {
  enum class Kind { apply, stage, install } kind = Kind::apply;
  std::vector<std::string> entries;       // apply: encoded gcs log entries, seqnos in order
  std::vector<storage::TableItem> items;  // stage
  bool reset = false;                     // stage: first chunk of a snapshot: empty the stage
  // stage: the staged part the snapshot carries forward (reset then keeps the staged data), and
  // where its stream stood before and after this chunk. install: whether it carried one.
  std::optional<storage::Reconcile> reconcile;
  storage::SnapshotCursor from, to;
  storage::ContentHash staged_hash;      // stage: of what is staged before this write
  std::optional<SnapshotResume> resume;  // stage: where the snapshot stands after this write
  uint64_t seqno = 0;                    // install: the snapshot's
  storage::ContentHash content_hash;     // install
  std::string cert_hash;                 // install
};

// What writing it did (persister.cpp writes it): its deliveries (apply), or the staged content
// hash after it (stage).
struct TransferWritten {
  std::vector<gcs::Delivery> deliveries;
  storage::ContentHash staged_hash;
};

// The donor's half: answers pulls from its store. Snapshot sessions are bounded in number and
// dropped when idle. serve may run on another thread than the rest (tuttid's donor WorkerThread):
// the sessions are behind a mutex, never held during a read.
class Donor {
 public:
  explicit Donor(storage::Store& store) : store_(store) {}
  // REQUIRES: the request's history is this node's and this node holds the group's state.
  Response serve(uint64_t id, const TransferRequest& req, Clock::time_point now);
  // Drops idle sessions; logs progress now and then.
  void tick(Clock::time_point now);
  // Served a pull lately: the node reports itself a DONOR.
  bool active(Clock::time_point now) const;
  TransferProgress progress(Clock::time_point now) const;

 private:
  bool active_locked(Clock::time_point now) const;
  Response log_chunk(uint64_t id, const LogPull& pull);
  Response snapshot_chunk(uint64_t id, const TransferRequest& req, const SnapshotPull& pull,
                          Clock::time_point now);
  struct Session {
    std::unique_ptr<storage::Snapshot> snap;
    SnapshotChunk header;  // seqno, hashes, sender_high, total
    std::string joiner;
    Clock::time_point started, last;
    SnapshotTally sent;  // a chunk sent again (its answer was lost) counts twice: an estimate
    storage::SnapshotCursor cursor;               // after the last chunk sent
    std::optional<storage::Reconcile> reconcile;  // the joiner's staged part, carried forward
  };
  std::shared_ptr<Session> open_session(uint64_t id, const TransferRequest& req, uint64_t& session,
                                        Clock::time_point now, std::optional<Response>& refusal);
  storage::Store& store_;
  mutable std::mutex mu_;
  // A session being read from is kept alive by its reader while tick may drop it.
  std::map<uint64_t, std::shared_ptr<Session>> sessions_;
  uint64_t next_session_ = 1;
  Clock::time_point last_served_{};
  Clock::time_point last_logged_{};
  std::string last_joiner_;
  std::string last_kind_;
};

// The joiner's half.
class Joiner {
 public:
  struct Options {
    std::vector<std::string> preferred;  // names of the donors to ask first, in order
    uint32_t chunk_bytes = kTransferChunkBytes;
    Clock::duration timeout = kTransferTimeout;
    // While the group is busy, the share of the time (percent) a snapshot may spend pulling
    // and writing its chunks; it waits the rest. 100: never waits.
    uint32_t busy_share = 100;
  };
  // applied, sender_high: what the node holds now; resume: the snapshot its staged tables hold
  // part of (kMetaSnapshotResume), if any.
  Joiner(std::string history, std::string self_name, uint64_t applied,
         std::map<gcs::NodeId, uint64_t> sender_high, Options options, Clock::time_point now,
         std::optional<SnapshotResume> resume = std::nullopt);

  // The node is in a primary view with this base, and these members may donate.
  void set_target(uint64_t base, std::vector<gcs::NodeId> donors);
  // A pull to send now, with its number: (donor, request). At most one is in flight.
  struct Pull {
    uint64_t number;
    gcs::NodeId donor;
    TransferRequest request;
  };
  std::optional<Pull> poll(Clock::time_point now);
  // The answer to pull `number`, or nullopt when it got none (unreachable, broken, timed out).
  void on_reply(uint64_t number, std::optional<Response> reply, Clock::time_point now);
  // Whether the group commits writes now: a snapshot is paced meanwhile (Options::busy_share).
  void set_group_busy(bool busy);
  // The next write, once the one before it is on disk; now: when it starts.
  std::optional<TransferWrite> take_write(Clock::time_point now);
  bool has_write() const { return !writing_ && !pending_.empty(); }
  void written(const TransferWritten& w, Clock::time_point now);
  // The write did not reach the disk: it is written again.
  void write_failed(TransferWrite w);
  // The stage refused the write as damaged (storage::StorageError::Kind::corrupt): nothing of it
  // was written, and the snapshot starts over.
  void write_rejected(const std::string& why, Clock::time_point now);

  // Everything up to the target is applied: the group delivers from applied() + 1 on.
  bool done() const {
    return target_known_ && applied_ >= target_ && !writing_ && pending_.empty() &&
           mode_ == Mode::incremental;
  }
  uint64_t applied() const { return applied_; }
  const std::map<gcs::NodeId, uint64_t>& sender_high() const { return sender_high_; }
  TransferProgress progress(Clock::time_point now) const;
  // Why the node refuses writes meanwhile, in words ("catching up: 41% of the snapshot ...").
  std::string describe() const;
  // A line for the log every kProgressEvery (empty when not due).
  std::string progress_line(Clock::time_point now);
  void set_donor_name(std::function<std::string(const gcs::NodeId&)> name) {
    name_ = std::move(name);
  }

 private:
  enum class Mode { incremental, snapshot };
  // session_kept: the donor gave no answer, so its snapshot session may live on: resume it.
  void fail_donor(const std::string& why, Clock::time_point now, bool session_kept = false);
  void queue_install();
  std::optional<gcs::NodeId> choose_donor(Clock::time_point now) const;
  bool in_view(const gcs::NodeId& id) const;
  bool awaiting_snapshot_donor(Clock::time_point now);
  void on_log(const LogChunk& c, Clock::time_point now);
  void on_snapshot(SnapshotChunk& c, Clock::time_point now);
  // REQUIRES: the donor asked says its log does not reach back to next_from_.
  void log_short(Clock::time_point now);
  void start_snapshot(Clock::time_point now);
  // The snapshot's donor is lost: the next one carries forward what is staged (if anything).
  void carry_over(Clock::time_point now);
  void start_incremental(uint64_t from, Clock::time_point now);
  // A pull or a write of the snapshot took `took`: while the group is busy, the next pull waits
  // so that the snapshot keeps to its share of the time.
  void pace(Clock::duration took, Clock::time_point now);
  std::string donor_name() const;

  std::string history_, self_name_;
  Options o_;
  std::function<std::string(const gcs::NodeId&)> name_;
  uint64_t applied_;
  std::map<gcs::NodeId, uint64_t> sender_high_;
  uint64_t target_ = 0;
  bool target_known_ = false;
  std::vector<gcs::NodeId> donors_;
  std::map<gcs::NodeId, Clock::time_point> failed_until_;
  std::set<gcs::NodeId> log_short_;  // donors whose log does not reach back to next_from_
  std::optional<gcs::NodeId> donor_;
  Mode mode_ = Mode::incremental;

  uint64_t next_number_ = 1;
  std::optional<uint64_t> in_flight_;  // the number of the pull awaiting its answer
  Clock::time_point sent_at_{};
  Clock::time_point retry_at_{};  // no pull before (a donor not yet at the range, say)

  std::deque<TransferWrite> pending_;           // bounded: no pull while kMaxPendingWrites wait
  std::optional<TransferWrite::Kind> writing_;  // on its way to disk
  Clock::time_point write_started_{};
  bool group_busy_ = false;
  bool said_paced_ = false;  // logged that the snapshot is paced

  uint64_t next_from_ = 0;  // incremental: the next seqno to pull
  uint64_t ist_start_ = 0;  // incremental: applied when it started, for progress

  // snapshot
  uint64_t session_ = 0;
  storage::SnapshotCursor cursor_;
  SnapshotChunk header_;
  storage::ContentHash staged_;                  // of what is staged on disk
  std::optional<storage::Reconcile> reconcile_;  // the session carries forward a staged part
  SnapshotTally received_;
  bool first_chunk_ = true;
  Clock::time_point last_chunk_at_{};  // the donor served the session then
  bool resumed_ = false;               // from a record of a restarted node: not yet said so
  std::optional<Clock::time_point> donor_missing_since_;  // the snapshot's donor, from the view

  Clock::time_point phase_started_;
  Clock::time_point last_logged_{};
  std::string last_failure_;
};

}  // namespace tutti::core
