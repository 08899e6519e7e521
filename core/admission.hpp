// What a node takes in: the limits on requests (NodeLimits), the checks of a request against
// them, and the estimate of the data dir's free space that a commit must fit in.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/messages.hpp"
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
  // State transfer: what a joiner asks a donor for in one pull. Each pull's data is one write
  // on the joiner's storage thread, which the group's batches queue behind: small enough to
  // keep them quick, large enough for the stream's pace.
  uint32_t transfer_chunk_bytes = 4u << 20;
  // What a joiner logs from the group while it catches up, in write-sets and in their bytes
  // (it keeps them in memory too), before it asks the group to pause (and is evicted past
  // --max-flow-pause, to rejoin once it caught up). A group committing 10,000 small write-sets
  // a second fills the count in 100 s: time for a snapshot of tens of GB, paced.
  size_t max_joiner_backlog = 1000000;
  size_t max_joiner_backlog_bytes = size_t{512} << 20;
  // While the group commits writes, the share of the time (percent) a joiner's snapshot takes
  // (its pulls and writes); it yields the rest. On a machine or disk the joiner shares with
  // the group, the snapshot's copies and writes otherwise take what the group's commits need.
  // 10: on one 2-core machine hosting every node the group kept 79-92% of its rate during a
  // join at 10, 66-70% at 30 (docs/performance.md); an idle group's snapshot is not paced.
  uint32_t snapshot_busy_share = 10;
};

using ReplyFn = std::function<void(Response)>;

inline ErrorReply error_reply(ErrorCode code, std::string message) {
  return ErrorReply{code, std::move(message)};
}

// A key the node takes: not empty, within the limit.
std::optional<ErrorReply> check_key(std::string_view key, const NodeLimits& limits);
// A commit the node takes: an id, something to do, keys and values within the limits, no key
// written twice.
std::optional<ErrorReply> check_commit(const CommitRequest& req, const NodeLimits& limits);

// statvfs on every commit costs a tenth of a busy node's time: the file system is asked now and
// then (through the store's Env), and what the commits since may have used is counted down.
class FreeSpace {
 public:
  explicit FreeSpace(const storage::Store& store) : store_(store) {}
  // The bytes free as estimated now; reserve is then counted as used.
  uint64_t take(uint64_t reserve);

 private:
  const storage::Store& store_;
  uint64_t cache_ = 0;
  storage::Clock::time_point checked_at_{};
};

}  // namespace tutti::core
