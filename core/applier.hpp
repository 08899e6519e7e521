// Certification and apply of delivered write-sets (DESIGN.md §2-3).
//
// Deterministic: its only inputs are the delivered (seqno, payload) and the store as it stands
// after every earlier seqno, so every node reaches the same outcome without votes.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/messages.hpp"
#include "storage/store.hpp"

namespace tutti::core {

struct Decision {
  std::string txn_id;
  bool marker = false;  // a read marker: txn_id is the marker's number at its origin
  Outcome outcome;
  bool duplicate = false;  // the txn id was decided before; outcome is that recorded decision
  bool reused = false;     // ... for a different transaction (other reads or writes)
};

// What identifies a transaction's content across retries: XXH3 of its reads and writes.
uint64_t transaction_fingerprint(const std::vector<ReadItem>& reads,
                                 const std::vector<WriteItem>& writes);

// Certifies the write-set delivered at seqno and, if it commits, applies it in txn. The outcome of
// a transaction id seen before is its recorded outcome (whose seqno is the first delivery's), and
// nothing is applied again. Advances last_committed to seqno in every case.
//
// A transaction record counts for the txn_retention seqnos after the one it was made at: a retry
// is recognised within that window. The window must be the same on every node (outcomes depend
// on it), so it is a constant of the history, not a per-node setting. The store keeps records in
// generations of that many seqnos and empties the older of two as a generation begins, so some
// it keeps no longer count (docs/storage.md).
inline constexpr uint64_t kTxnRetention = storage::kTxnWindow;
Decision certify_and_apply(storage::WriteTxn& txn, uint64_t seqno, std::string_view payload,
                           uint64_t txn_retention = kTxnRetention);

// The recorded outcome of txn_id that counts when seqno is applied, if any.
std::optional<Outcome> counted_record(const storage::ReadView& view, std::string_view txn_id,
                                      uint64_t seqno, uint64_t txn_retention = kTxnRetention);

// Hash chain over every outcome, kept in meta under this name, so two nodes can compare
// certification histories. A snapshot transfer carries it.
inline constexpr std::string_view kMetaCertHash = "cert_hash";
uint64_t certification_hash(const storage::ReadView& view);

}  // namespace tutti::core
