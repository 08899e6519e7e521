#include "core/applier.hpp"

#include <xxhash.h>

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/codec.hpp"

namespace tutti::core {
namespace {

uint64_t load_u64(std::string_view bytes) {
  uint64_t v = 0;
  if (bytes.size() == sizeof v) std::memcpy(&v, bytes.data(), sizeof v);
  return v;
}

void chain_outcome(storage::WriteTxn& txn, uint64_t seqno, const Outcome& outcome) {
  struct {
    uint64_t prev, seqno, recorded_seqno, committed;
  } link{certification_hash(txn), seqno, outcome.seqno, outcome.committed ? 1u : 0u};
  const uint64_t next = XXH3_64bits(&link, sizeof link);
  txn.meta_put(kMetaCertHash, std::string_view(reinterpret_cast<const char*>(&next), sizeof next));
}

// Why the store could never hold what this write-set writes or records ("" when it can). Every
// node runs the same check on the same bytes, so a write-set the store cannot take is rejected
// alike everywhere instead of halting every node that tries to persist it.
std::string storage_refusal(const WriteSet& ws) {
  if (ws.txn_id.size() > storage::kMaxKeyBytes)
    return fmt::format("transaction id of {} bytes is over the store's limit of {} bytes",
                       ws.txn_id.size(), storage::kMaxKeyBytes);
  for (const ReadItem& r : ws.reads)
    if (auto why = storage::key_refusal(r.key); !why.empty()) return "read of " + why;
  for (const WriteItem& w : ws.writes) {
    if (auto why = storage::key_refusal(w.key); !why.empty()) return "write of " + why;
    if (w.value && w.value->size() > storage::kMaxValueBytes)
      return fmt::format("value of {} bytes is over the store's limit of {} bytes", w.value->size(),
                         storage::kMaxValueBytes);
  }
  return "";
}

Outcome certify(const storage::WriteTxn& txn, uint64_t seqno, const WriteSet& ws) {
  Outcome outcome{seqno, true, {}, {}};
  for (const ReadItem& read : ws.reads) {
    const auto current = txn.get(read.key);
    const uint64_t version = current ? current->version : 0;
    if (version != read.version) outcome.conflict_keys.push_back(read.key);
  }
  outcome.committed = outcome.conflict_keys.empty();
  return outcome;
}

}  // namespace

uint64_t transaction_fingerprint(const std::vector<ReadItem>& reads,
                                 const std::vector<WriteItem>& writes) {
  XXH3_state_t* state = XXH3_createState();
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  auto add_u64 = [&](uint64_t v) { XXH3_64bits_update(state, &v, sizeof v); };
  auto add_bytes = [&](std::string_view b) {
    add_u64(b.size());
    XXH3_64bits_update(state, b.data(), b.size());
  };
  add_u64(reads.size());
  for (const auto& r : reads) {
    add_bytes(r.key);
    add_u64(r.version);
  }
  add_u64(writes.size());
  for (const auto& w : writes) {
    add_bytes(w.key);
    add_u64(w.value ? 1 : 0);
    if (w.value) add_bytes(*w.value);
  }
  const uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return h == 0 ? 1 : h;  // 0 means "not known" in a record
}

uint64_t certification_hash(const storage::ReadView& view) {
  auto raw = view.meta_get(kMetaCertHash);
  return raw ? load_u64(*raw) : 0;
}

std::optional<Outcome> counted_record(const storage::ReadView& view, std::string_view txn_id,
                                      uint64_t seqno, uint64_t txn_retention) {
  for (const std::string& raw : view.txn_records(txn_id)) {
    Outcome o = decode_outcome(raw);
    // The line format 2 drew by forgetting, as it applied seqno s - 1, every record made before
    // s - window: the same outcomes on nodes that upgraded at different seqnos. (Two records of
    // one id never both count: the later was made only because the earlier no longer did.)
    if (seqno <= txn_retention || o.seqno >= seqno - txn_retention) return o;
  }
  return std::nullopt;
}

Decision certify_and_apply(storage::WriteTxn& txn, uint64_t seqno, std::string_view payload,
                           uint64_t txn_retention) {
  Outcome outcome;
  bool duplicate = false;
  bool reused = false;
  // A generation of records begins: its table holds those of two generations ago, none of which
  // counts any more (counted_record).
  const uint64_t generation = (seqno - 1) / txn_retention;
  if ((seqno - 1) % txn_retention == 0 && generation >= 2) txn.start_txn_generation(generation);
  WriteSet ws;
  try {
    ws = decode_writeset(payload);
  } catch (const DecodeError& e) {
    // Every node holds the same bytes at this seqno, so every node rejects it alike.
    outcome = Outcome{seqno, false, {}, e.what()};
  }
  if (outcome.rejected.empty() && ws.txn_id.empty())
    outcome = Outcome{seqno, false, {}, "write-set has no transaction id"};
  if (outcome.rejected.empty() && !ws.marker)
    if (auto why = storage_refusal(ws); !why.empty()) outcome = Outcome{seqno, false, {}, why};
  if (outcome.rejected.empty() && ws.marker) {
    outcome = Outcome{seqno, true, {}, {}};  // a read marker: nothing to certify or write
  } else if (outcome.rejected.empty()) {
    if (auto recorded = counted_record(txn, ws.txn_id, seqno, txn_retention)) {
      outcome = std::move(*recorded);
      duplicate = true;
      reused = outcome.fingerprint != 0 &&
               outcome.fingerprint != transaction_fingerprint(ws.reads, ws.writes);
    } else {
      outcome = certify(txn, seqno, ws);
      outcome.fingerprint = transaction_fingerprint(ws.reads, ws.writes);
      if (outcome.committed) {
        for (const WriteItem& w : ws.writes) {
          if (w.value) {
            txn.put(w.key, seqno, *w.value);
          } else {
            txn.del(w.key);
          }
        }
      }
      txn.record_txn(ws.txn_id, generation, encode_outcome(outcome));
    }
  }
  chain_outcome(txn, seqno, outcome);
  txn.set_last_committed(seqno);
  return Decision{std::move(ws.txn_id), ws.marker, std::move(outcome), duplicate, reused};
}

}  // namespace tutti::core
