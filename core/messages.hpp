// The client protocol and write-sets as plain C++ values. core/codec.hpp turns them into Cap'n
// Proto frames and back; nothing else in core/ touches the wire schema.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "storage/store.hpp"

namespace tutti::core {

inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr uint16_t kWriteSetFormat = 1;
inline constexpr uint16_t kOutcomeFormat = 1;

enum class Consistency { linearizable, local };

struct ReadItem {
  std::string key;
  uint64_t version = 0;  // 0 = absent
  bool operator==(const ReadItem&) const = default;
};

struct WriteItem {
  std::string key;
  std::optional<std::string> value;  // nullopt = delete
  bool operator==(const WriteItem&) const = default;
};

struct WriteSet {
  std::string origin;  // node uuid, 16 bytes
  std::string txn_id;
  std::vector<ReadItem> reads;
  std::vector<WriteItem> writes;
  bool marker = false;  // a read marker (linearizable reads): certifies and writes nothing
  bool operator==(const WriteSet&) const = default;
};

// What certification decided for one write-set.
struct Outcome {
  uint64_t seqno = 0;
  bool committed = false;
  std::vector<std::string> conflict_keys;
  std::string rejected;  // non-empty: malformed write-set, never certified
  // What was decided: XXH3 of the reads and writes (not the origin: a retry may come through
  // another node), so a reused transaction id is told from a retry. 0: not known.
  uint64_t fingerprint = 0;
  bool operator==(const Outcome&) const = default;
};

struct GetRequest {
  std::string key;
  Consistency consistency = Consistency::linearizable;
};
struct ScanRequest {
  std::string prefix;
  uint32_t limit = 0;
  Consistency consistency = Consistency::linearizable;
};
struct CommitRequest {
  std::string txn_id;
  std::vector<ReadItem> reads;
  std::vector<WriteItem> writes;
};
struct StatusRequest {};
struct MembersRequest {};
// Answered once this node installed a view change numbered above `after` (0: the current view).
struct WatchViewsRequest {
  uint64_t after = 0;
};

// State transfer (docs/transfer.md): a joiner pulls from a donor, one request at a time.
struct LogPull {
  uint64_t from = 0, through = 0;
  uint32_t max_bytes = 0;
};
struct SnapshotPull {
  uint64_t session = 0;  // 0: start a snapshot
  storage::SnapshotCursor cursor;
  uint32_t max_bytes = 0;
  uint64_t seqno = 0;  // the session's snapshot seqno; 0 when starting
  // When starting: the part staged at the joiner that the snapshot carries forward.
  std::optional<storage::Reconcile> reconcile;
};
struct TransferRequest {
  std::string history;
  std::variant<LogPull, SnapshotPull> pull;
  std::string joiner;  // its name
};

struct Request {
  uint64_t id = 0;
  std::variant<GetRequest, ScanRequest, CommitRequest, StatusRequest, MembersRequest,
               WatchViewsRequest, TransferRequest>
      body;
};

enum class ErrorCode {
  bad_request,
  unavailable,
  not_primary,
  too_large,
  storage,
  internal,
  unsupported_version,
  busy,
  txn_id_reused
};

struct ErrorReply {
  ErrorCode code = ErrorCode::internal;
  std::string message;
};
struct ValueReply {
  bool found = false;
  std::string value;
  uint64_t version = 0;
  bool may_be_stale = false;
};
struct KeyValue {
  std::string key;
  std::string value;
  uint64_t version = 0;
};
struct ScanReply {
  std::vector<KeyValue> entries;
  bool may_be_stale = false;
  bool truncated = false;
};
struct CommitReply {
  bool committed = false;
  uint64_t seqno = 0;
  std::vector<std::string> conflict_keys;
  bool duplicate = false;
};
struct TransferProgress {
  std::string kind;  // "snapshot" or "incremental"; empty: no transfer
  std::string role;  // "joiner" or "donor"
  std::string peer;
  uint64_t done = 0, total = 0;
  std::string unit;  // "bytes" or "write-sets"
  double rate = 0;   // units per second
  double eta_s = 0;
};
struct StatusReply {
  std::string name;
  std::string state;
  bool primary = false;
  uint32_t cluster_size = 0;
  uint64_t last_committed = 0;
  std::string history_uuid;
  std::string content_hash;
  std::string node_uuid;
  std::string durability;
  std::string view_id;
  std::vector<std::string> paused_by;  // names of members holding the group paused
  std::string waiting_for;             // when not primary: what the node waits for
  TransferProgress transfer;
};
struct MemberEntry {
  std::string name;
  std::string uuid;
  std::string gcs_addr;
  std::string client_addr;
  std::string state;
  uint64_t last_committed = 0;
  bool pausing = false;  // flow control: this member holds the group paused
};
struct MembersReply {
  std::string view_id;
  bool primary = false;
  std::vector<MemberEntry> members;
};
struct ViewChange {
  uint64_t number = 0;
  std::string view_id;
  bool primary = false;
  std::vector<std::string> members;
  uint64_t last_committed = 0;
};
struct ViewsReply {
  std::vector<ViewChange> changes;
};

struct LogChunk {
  bool covered = false;  // false: the donor's log does not hold the range's start
  uint64_t donor_committed = 0;
  std::vector<std::string> entries;  // encoded gcs log entries, contiguous from the pull's `from`
};
struct SnapshotChunk {
  uint64_t session = 0;
  uint64_t seqno = 0;
  storage::ContentHash content_hash;
  std::string cert_hash;
  std::map<std::string, uint64_t> sender_high;
  uint64_t total_bytes = 0;
  std::vector<storage::TableItem> items;
  storage::SnapshotCursor cursor;  // after items
  // Per state table at the snapshot, the bytes its pages take, for the size estimate
  // (estimate_snapshot_bytes): none, or one each.
  std::vector<uint64_t> table_page_bytes;
};
struct TransferReply {
  std::variant<LogChunk, SnapshotChunk> chunk;
};
// Not sent: kept in a joiner's meta with each staged chunk (docs/transfer.md), so that its
// snapshot resumes in the donor's session after a restart or a lost connection.
struct SnapshotResume {
  std::string donor;     // node uuid
  SnapshotChunk header;  // no items; cursor: after what is staged
  storage::ContentHash staged_hash;
  uint64_t received_bytes = 0;
  // Per state table: the bytes (keys and values) staged so far (none, or one each).
  std::vector<uint64_t> table_bytes_got;
  std::optional<storage::Reconcile> reconcile;  // the session carries forward this staged part
};

// A response already framed for the wire (header and payload): a donor encodes its megabytes
// of snapshot off the node's loop, which then only writes them (Node::serve_transfer).
struct EncodedReply {
  std::string frame;
};

struct Response {
  uint64_t id = 0;
  std::variant<ErrorReply, ValueReply, ScanReply, CommitReply, StatusReply, MembersReply,
               ViewsReply, TransferReply, EncodedReply>
      body;
};

}  // namespace tutti::core
