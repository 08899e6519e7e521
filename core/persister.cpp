#include "core/persister.hpp"

#include <utility>

#include "core/codec.hpp"
#include "core/thread_priority.hpp"
#include "gcs/invariant.hpp"
#include "gcs/wire.hpp"

namespace tutti::core {
namespace {

// A snapshot chunk the stage refuses: the stream is damaged, not the store.
struct TransferRejected : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A joiner's state transfer (core/transfer.hpp) in the batch's transaction.
TransferWritten write_transfer(storage::WriteTxn& txn, const TransferWrite& w,
                               std::vector<Certified>& certified, bool with_hashes) {
  TransferWritten out;
  switch (w.kind) {
    case TransferWrite::Kind::apply:
      for (const auto& raw : w.entries) {
        gcs::LogEntry e = gcs::decode_log_entry(raw);
        TUTTI_INVARIANT(e.seqno == txn.meta().last_committed + 1,
                        "a transfer applies seqno {} after seqno {}", e.seqno,
                        txn.meta().last_committed);
        // The log holds what was applied: whatever it held at this seqno was a tentative entry
        // that the group replaced (kept by a joiner, which may not trust it).
        txn.log_put(e.seqno, raw);
        Decision decision = certify_and_apply(txn, e.seqno, e.payload);
        certified.push_back(Certified{
            std::move(decision), with_hashes ? txn.meta().content_hash : storage::ContentHash{}});
        out.deliveries.push_back(
            gcs::Delivery{e.seqno, e.sender, std::move(e.payload), e.sender_seq, false});
      }
      break;
    case TransferWrite::Kind::stage:
      try {
        // A snapshot that carries the staged data forward starts by emptying only the rest.
        if (w.reset)
          txn.stage_reset(w.reconcile ? storage::Table::txns_even : storage::Table::data);
        out.staged_hash = w.reset && !w.reconcile ? storage::ContentHash{} : w.staged_hash;
        txn.stage_chunk(w.items, w.from, w.to, w.reconcile ? &*w.reconcile : nullptr,
                        out.staged_hash);
        if (w.resume) {
          SnapshotResume r = *w.resume;
          r.staged_hash = out.staged_hash;
          txn.meta_put(kMetaSnapshotResume, encode_snapshot_resume(r));
        }
        break;
      } catch (const storage::StorageError& e) {
        if (e.kind() != storage::StorageError::Kind::corrupt) throw;
        throw TransferRejected(e.what());
      }
    case TransferWrite::Kind::install:
      txn.install_staged(w.seqno, w.content_hash);
      txn.log_drop_through(w.seqno);  // what it held up to there was not applied as such here
      if (!w.cert_hash.empty()) txn.meta_put(kMetaCertHash, w.cert_hash);
      txn.meta_del(kMetaSnapshotResume);
      break;
  }
  return out;
}

}  // namespace

bool decided_before_commit(const gcs::MemberReady& ready, const gcs::Delivery& delivery) {
  return !delivery.at_view_change && !ready.truncate_after &&
         (ready.append.empty() || delivery.seqno < ready.append.front().seqno);
}

std::vector<Certified> write_batch(storage::Store& store, const std::string& node_uuid,
                                   const PersistBatch& batch, bool with_hashes,
                                   TransferWritten* transferred,
                                   std::vector<Certified>* transfer_certified,
                                   std::optional<uint64_t>* last_committed, const Decided* decided,
                                   const Logged* logged) {
  std::vector<Certified> certified;
  bool told = false;
  const gcs::MemberReady& ready = batch.ready;
  if (batch.empty()) return certified;  // every change comes with meta
  TUTTI_INVARIANT(!batch.transfer || (transferred && transfer_certified),
                  "a transfer write with nowhere to report it");
  const auto fill = [&](storage::WriteTxn& txn) {
    certified.clear();  // the map may grow and this run again
    if (transfer_certified) transfer_certified->clear();
    if (ready.truncate_after) txn.log_truncate_from(*ready.truncate_after + 1);
    for (size_t i = 0; i < ready.append.size(); ++i) {
      const auto& e = ready.append[i];
      TUTTI_INVARIANT(i == 0 || e.seqno == ready.append[i - 1].seqno + 1,
                      "a Ready appends seqno {} after {}", e.seqno, ready.append[i - 1].seqno);
      txn.log_append(e.seqno, gcs::encode_log_entry(e));
    }
    for (const auto& ev : ready.events) {
      auto* d = std::get_if<gcs::Delivery>(&ev);
      if (!d) continue;
      TUTTI_INVARIANT(d->seqno == txn.meta().last_committed + 1,
                      "certification fed seqno {} after seqno {}", d->seqno,
                      txn.meta().last_committed);
      Decision decision = certify_and_apply(txn, d->seqno, d->payload);
      certified.push_back(Certified{
          std::move(decision), with_hashes ? txn.meta().content_hash : storage::ContentHash{}});
    }
    if (decided && !told) {
      told = true;  // a rerun (the map grew) decides the same
      std::vector<Decision> early;
      size_t next = 0;
      for (const auto& ev : ready.events) {
        auto* d = std::get_if<gcs::Delivery>(&ev);
        if (!d) continue;
        const Decision& decision = certified[next++].decision;
        if (!decided_before_commit(ready, *d)) break;  // and so every later one
        if (d->origin == node_uuid) early.push_back(decision);
      }
      (*decided)(std::move(early));
    }
    if (ready.meta) {
      // Unchanged by a batch of log entries alone, which then commits nothing in LMDB: its one
      // flush is the log's (storage::Store::write).
      const std::string durable = gcs::encode_durable(*ready.meta);
      if (txn.meta_get(kMetaGcsState) != durable) txn.meta_put(kMetaGcsState, durable);
      if (txn.meta().history_uuid != ready.meta->history)
        txn.set_identity(ready.meta->history, node_uuid);
    }
    if (batch.directory) txn.meta_put(kMetaGcsPeers, *batch.directory);
    if (batch.transfer)
      *transferred = write_transfer(txn, *batch.transfer, *transfer_certified, with_hashes);
    if (last_committed) *last_committed = txn.meta().last_committed;
  };
  // A batch that changes the group's durable state (a view, a promise) must not leave, after a
  // crash between the log's write and LMDB's, entries of the new state beside the old one.
  store.write(
      fill, batch.meta_may_lag() ? storage::Store::Sync::data_only : storage::Store::Sync::full,
      ready.durable_changed ? storage::Store::LogOrder::around : storage::Store::LogOrder::before,
      batch.log_and_deliveries_only() ? logged : nullptr);
  return certified;
}

PersistResult persist(storage::Store& store, const std::string& node_uuid, PersistBatch batch,
                      bool with_hashes, const Decided* decided, const Logged* logged) {
  PersistResult r;
  const auto started = store.env().now();
  try {
    try {
      r.certified = write_batch(store, node_uuid, batch, with_hashes, &r.transferred,
                                &r.transfer_certified, &r.last_committed, decided, logged);
    } catch (const TransferRejected& e) {
      // Nothing of the batch was written: the rest of it is, without the damaged chunk.
      r.transfer_rejected = e.what();
      r.transferred = {};
      r.transfer_certified.clear();
      auto transfer = std::exchange(batch.transfer, std::nullopt);
      // (The first run told the early outcomes already: they are the same.)
      r.certified = write_batch(store, node_uuid, batch, with_hashes, nullptr, nullptr,
                                &r.last_committed, nullptr);
      batch.transfer = std::move(transfer);
    }
    r.ok = true;
  } catch (const std::exception& e) {  // storage, or a record that no longer decodes
    r.error = e.what();
  }
  r.write_time = store.env().now() - started;
  r.batch = std::move(batch);
  return r;
}

void InlinePersister::submit(PersistBatch batch, bool with_hashes, Done done, Decided, Logged) {
  done(persist(store_, node_uuid_, std::move(batch), with_hashes));
}

ThreadPersister::ThreadPersister(storage::Store& store, std::string node_uuid,
                                 std::function<void(std::function<void()>)> post, bool group_inline)
    : store_(store),
      node_uuid_(std::move(node_uuid)),
      post_(std::move(post)),
      group_inline_(group_inline) {
  group_.thread = std::thread([this] { run(group_); });
  transfer_.thread = std::thread([this] {
    set_thread_priority(ThreadPriority::background, "transfer storage thread");
    run(transfer_);
  });
}

ThreadPersister::~ThreadPersister() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  group_.wake.notify_one();
  transfer_.wake.notify_one();
  group_.thread.join();
  transfer_.thread.join();
}

void ThreadPersister::submit(PersistBatch batch, bool with_hashes, Done done, Decided decided,
                             Logged logged) {
  // A big batch (a joiner's backlog, say) would hold the loop, and the heartbeats it sends,
  // for seconds: it goes to the thread like any other.
  constexpr size_t kInlineMax = 256;
  if (group_inline_ && !batch.transfer &&
      batch.ready.append.size() + batch.ready.events.size() <= kInlineMax) {
    {
      std::lock_guard lock(mu_);
      TUTTI_INVARIANT(!in_flight_, "a batch submitted while the last one is on its way to disk");
    }
    return done(persist(store_, node_uuid_, std::move(batch), with_hashes));
  }
  Lane& lane = batch.transfer ? transfer_ : group_;
  {
    std::lock_guard lock(mu_);
    TUTTI_INVARIANT(!in_flight_, "a batch submitted while the last one is on its way to disk");
    in_flight_ = true;
    lane.job =
        Job{std::move(batch), with_hashes, std::move(done), std::move(decided), std::move(logged)};
  }
  lane.wake.notify_one();
}

// Writes what it is given until stopped; a batch already taken is finished first.
void ThreadPersister::run(Lane& lane) {
  for (;;) {
    std::unique_lock lock(mu_);
    lane.wake.wait(lock, [&] { return lane.job.has_value() || stopping_; });
    if (!lane.job) return;
    Job job = std::move(*lane.job);
    lane.job.reset();
    lock.unlock();
    // Told on the node's thread while this one waits for the disk; posted before the outcome.
    const Decided tell = [this, &job](std::vector<Decision> early) {
      if (early.empty()) return;
      post_([decided = job.decided, early = std::move(early)]() mutable {
        decided(std::move(early));
      });
    };
    const Logged tell_logged = [this, &job] { post_(job.logged); };
    auto result = std::make_shared<PersistResult>(
        persist(store_, node_uuid_, std::move(job.batch), job.with_hashes,
                job.decided ? &tell : nullptr, job.logged ? &tell_logged : nullptr));
    auto done = std::make_shared<Done>(std::move(job.done));
    lock.lock();
    in_flight_ = false;  // the next may come once this one's outcome is posted
    lock.unlock();
    post_([result, done] { (*done)(std::move(*result)); });
  }
}

}  // namespace tutti::core
