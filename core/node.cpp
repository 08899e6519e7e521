#include "core/node.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/codec.hpp"
#include "core/uuid.hpp"
#include "gcs/invariant.hpp"

namespace tutti::core {
namespace {

ErrorReply error(ErrorCode code, std::string message) {
  return error_reply(code, std::move(message));
}

ErrorCode to_error_code(gcs::BroadcastError e) {
  switch (e) {
    case gcs::BroadcastError::not_primary:
      return ErrorCode::not_primary;
    case gcs::BroadcastError::too_large:
      return ErrorCode::too_large;
    case gcs::BroadcastError::queue_full:
      return ErrorCode::busy;
    case gcs::BroadcastError::none:
      break;
  }
  return ErrorCode::internal;
}

Response commit_response(uint64_t id, const Decision& d) {
  if (d.reused)
    return Response{
        id, error(ErrorCode::txn_id_reused,
                  fmt::format("transaction id '{}' was used before for a different transaction "
                              "({} at seqno {}); nothing written: give this one a new id",
                              d.txn_id, d.outcome.committed ? "committed" : "not committed",
                              d.outcome.seqno))};
  if (!d.outcome.rejected.empty())
    return Response{id, error(ErrorCode::bad_request, "write-set rejected: " + d.outcome.rejected)};
  return Response{
      id, CommitReply{d.outcome.committed, d.outcome.seqno, d.outcome.conflict_keys, d.duplicate}};
}

}  // namespace

gcs::Durable load_durable(const storage::Store& store) {
  auto txn = store.read();
  gcs::Durable d;
  if (auto raw = txn->meta_get(kMetaGcsState)) d = gcs::decode_durable(*raw);
  if (d.history.empty()) d.history = txn->meta().history_uuid;
  // Delivered means applied: both are written in one storage transaction.
  d.delivered = txn->meta().last_committed;
  uint64_t from = d.delivered + 1;
  for (;;) {
    auto entries = txn->log_from(from, 1024);
    if (entries.empty()) break;
    for (const auto& e : entries) {
      gcs::LogEntry entry = gcs::decode_log_entry(e.bytes);
      d.log[entry.seqno] = std::move(entry);
      from = e.seqno + 1;
    }
  }
  return d;
}

Node::Node(std::string name, storage::Store& store, gcs::Group& group, NodeLimits limits,
           std::function<void()> request_flush, std::function<gcs::Directory()> directory,
           Persister* persister)
    : name_(std::move(name)),
      store_(store),
      group_(group),
      limits_(limits),
      request_flush_(std::move(request_flush)),
      directory_(std::move(directory)),
      persister_(persister),
      flow_(limits_),
      free_space_(store),
      views_(limits_.max_view_watchers),
      donor_(store) {
  const auto meta = store_.read()->meta();
  node_uuid_ = meta.node_uuid;
  if (!persister_) {
    own_persister_ = std::make_unique<InlinePersister>(store_, node_uuid_);
    persister_ = own_persister_.get();
  }
  last_committed_ = meta.last_committed;
  if (group_.has_ready()) schedule_flush();
}

void Node::handle(Request request, ReplyFn reply) {
  const uint64_t id = request.id;
  try {
    if (auto* g = std::get_if<GetRequest>(&request.body)) {
      if (auto e = check_key(g->key, limits_)) return reply(Response{id, *e});
      if (g->consistency == Consistency::linearizable)
        return read_after_marker(std::move(request), std::move(reply));
      if (auto e = holds_no_state()) return reply(Response{id, *e});
      read_now(std::move(request), std::move(reply));
    } else if (auto* s = std::get_if<ScanRequest>(&request.body)) {
      if (s->prefix.size() > limits_.max_key_bytes)
        return reply(
            Response{id, error(ErrorCode::too_large, "prefix is longer than the key limit")});
      if (s->consistency == Consistency::linearizable)
        return read_after_marker(std::move(request), std::move(reply));
      if (auto e = holds_no_state()) return reply(Response{id, *e});
      read_now(std::move(request), std::move(reply));
    } else if (auto* c = std::get_if<CommitRequest>(&request.body)) {
      commit(id, std::move(*c), std::move(reply));
    } else if (std::holds_alternative<MembersRequest>(request.body)) {
      reply(Response{id, members()});
    } else if (auto* w = std::get_if<WatchViewsRequest>(&request.body)) {
      if (!views_.watch(id, w->after, reply))
        reply(Response{id, error(ErrorCode::busy, "too many view watchers")});
    } else if (auto* t = std::get_if<TransferRequest>(&request.body)) {
      serve_transfer(id, *t, reply);
    } else {
      reply(Response{id, status()});
    }
  } catch (const storage::StorageError& e) {
    spdlog::error("request {} failed in storage: {}", id, e.what());
    reply(Response{id, error(ErrorCode::storage, e.what())});
  }
}

// A joiner's pull: only a member that holds the group's state donates, and only to its history.
void Node::serve_transfer(uint64_t id, const TransferRequest& t, const ReplyFn& reply) {
  const auto& d = group_.member().durable();
  if (d.history.empty() || t.history != d.history)
    return reply(Response{
        id, error(ErrorCode::bad_request,
                  fmt::format("this node belongs to cluster history {}, the joiner to {}: no "
                              "state transfer between histories",
                              d.history.empty() ? "none yet" : uuid_text(d.history),
                              t.history.empty() ? "none" : uuid_text(t.history)))});
  if (d.needs_transfer || joiner_)
    return reply(Response{
        id, error(ErrorCode::unavailable, "this node is catching up by state transfer itself")});
  const auto now = store_.env().now();
  if (!donor_offload_) return reply(donor_.serve(id, t, now));
  // Read and encoded off the loop (megabytes of a snapshot): the loop only writes the frame.
  auto out = std::make_shared<Response>();
  if (!donor_offload_(
          [this, out, id, t, now] {
            *out = Response{id, EncodedReply{encode_response_frame(donor_.serve(id, t, now))}};
          },
          [reply, out] { reply(std::move(*out)); }))
    reply(Response{id, error(ErrorCode::busy, "this donor has too many transfer reads queued")});
}

bool Node::stale(Consistency consistency) const {
  return consistency == Consistency::local &&
         (!group_.primary() || group_.view().members.size() > 1);
}

void Node::get(uint64_t id, const GetRequest& req, const ReplyFn& reply) {
  auto value = store_.read()->get(req.key);
  ValueReply out;
  out.may_be_stale = stale(req.consistency);
  if (value) {
    out.found = true;
    out.value = std::move(value->value);
    out.version = value->version;
  }
  reply(Response{id, std::move(out)});
}

void Node::scan(uint64_t id, const ScanRequest& req, const ReplyFn& reply) {
  const uint32_t limit =
      req.limit == 0 ? limits_.max_scan_entries : std::min(req.limit, limits_.max_scan_entries);
  // Capped by the node rather than by the client: one more entry says whether there was more.
  const bool capped = req.limit == 0 || req.limit > limits_.max_scan_entries;
  auto entries = store_.read()->scan(req.prefix, capped ? limit + 1 : limit);
  ScanReply out;
  if (capped && entries.size() > limit) {
    entries.resize(limit);
    out.truncated = true;
  }
  out.may_be_stale = stale(req.consistency);
  size_t bytes = 0;
  for (auto& e : entries) {
    bytes += e.key.size() + e.value.size() + 32;
    if (bytes > limits_.max_scan_reply_bytes) {
      out.truncated = true;
      break;
    }
    out.entries.push_back(KeyValue{std::move(e.key), std::move(e.value), e.version});
  }
  reply(Response{id, std::move(out)});
}

// A linearizable read must see everything committed cluster-wide before it arrived. Alone in a
// primary view, every commit is applied before its client hears of it: the snapshot already
// does. Otherwise the read waits for a marker this node sends through the total order after the
// read arrived: once the marker is applied here, so is everything ordered before it.
void Node::read_after_marker(Request request, ReplyFn reply) {
  const uint64_t id = request.id;
  if (auto e = catching_up()) {
    e->message += "; a --local read answers from its (possibly stale) snapshot";
    return reply(Response{id, *e});
  }
  if (!group_.primary())
    return reply(Response{
        id, error(ErrorCode::not_primary, not_primary_reason() +
                                              "; a --local read answers from its (possibly stale) "
                                              "snapshot")});
  if (group_.view().members.size() == 1) {
    // Alone, what it delivered is all the group did, but after a restart the tail its log held
    // (acknowledged commits among it) is delivered again as the view is installed, and applied
    // by a batch on its way to disk: the read waits for that batch. (Not for one that cannot be
    // written: what it delivers was never acknowledged, and reads go on meanwhile.)
    if (group_.member().durable().delivered > last_committed_ && persist_error_.empty()) {
      if (alone_reads_.size() >= limits_.max_waiting_reads)
        return reply(Response{id, error(ErrorCode::busy, "too many reads waiting")});
      alone_reads_.push_back(MarkedReads::Read{std::move(request), std::move(reply)});
      return;
    }
    return read_now(std::move(request), std::move(reply));
  }
  // Alone, its snapshot holds every acknowledged commit even while it cannot persist; in a
  // group, the marker it would send cannot leave until it can: refuse now rather than hang.
  if (!persist_error_.empty())
    return reply(Response{
        id, error(ErrorCode::storage, not_primary_reason() + "; a --local read answers from its "
                                                             "(possibly stale) snapshot")});
  if (reads_.size() >= limits_.max_waiting_reads)
    return reply(Response{id, error(ErrorCode::busy, "too many linearizable reads waiting")});
  reads_.add(MarkedReads::Read{std::move(request), std::move(reply)});
  send_marker();
}

void Node::send_marker() {
  if (!reads_.wants_marker()) return;
  WriteSet ws{node_uuid_, reads_.next_marker_id(), {}, {}, true};
  auto sent = group_.broadcast(encode_writeset(ws));
  if (!sent.ok()) return fail_reads(error(to_error_code(sent.error), sent.message));
  reads_.sent();
  schedule_flush();
}

// A client told of its commit reads it here at once: while the batch that applies what this node
// told early is on its way to disk (a fraction of a millisecond), its snapshot reads wait for it.
void Node::read_now(Request request, ReplyFn reply) {
  if (told_early_ && !persisting_)  // its write failed: it is retried, the reads are not
    return reply(Response{
        request.id, error(ErrorCode::storage,
                          fmt::format("not served: this node answered commits it cannot write to "
                                      "its data dir yet ({}); it retries every {} ms",
                                      persist_error_, kPersistRetry.count()))});
  if (told_early_) {
    if (after_commit_.size() >= limits_.max_waiting_reads)
      return reply(Response{request.id, error(ErrorCode::busy, "too many reads waiting")});
    after_commit_.push_back(MarkedReads::Read{std::move(request), std::move(reply)});
    return;
  }
  if (auto* g = std::get_if<GetRequest>(&request.body)) return get(request.id, *g, reply);
  scan(request.id, std::get<ScanRequest>(request.body), reply);
}

void Node::serve(std::vector<MarkedReads::Read> reads) {
  for (auto& r : reads) {
    if (auto* g = std::get_if<GetRequest>(&r.request.body)) {
      get(r.request.id, *g, r.reply);
    } else {
      scan(r.request.id, std::get<ScanRequest>(r.request.body), r.reply);
    }
  }
  send_marker();
}

void Node::fail_reads(const ErrorReply& e) {
  for (auto& r : reads_.take_all()) r.reply(Response{r.request.id, e});
}

// Refused before it is replicated: once ordered, a write-set must be persisted, so a node that
// cannot write must not send one (it would stall or leave the group instead of answering).
std::optional<ErrorReply> Node::check_writable(size_t payload_bytes) const {
  if (auto e = catching_up()) return e;
  if (!group_.primary()) return error(ErrorCode::not_primary, not_primary_reason());
  if (!persist_error_.empty())
    return error(ErrorCode::storage,
                 "not committed: this node cannot write to its data dir: " + persist_error_);
  // The write-set lands in the log and in the data, each page copied on write: a margin.
  const uint64_t need = 4 * static_cast<uint64_t>(payload_bytes) + (1u << 20);
  const uint64_t free = free_space_.take(need);
  if (free < need)
    return error(ErrorCode::storage,
                 fmt::format("not committed: no space left on the data dir's disk ({} bytes "
                             "free, this write needs about {})",
                             free, need));
  return std::nullopt;
}

void Node::commit(uint64_t id, CommitRequest req, ReplyFn reply) {
  if (auto e = check_commit(req, limits_)) return reply(Response{id, *e});
  const uint64_t fingerprint = transaction_fingerprint(req.reads, req.writes);
  auto view = store_.read();
  auto recorded = counted_record(*view, req.txn_id, view->meta().last_committed + 1);
  view.reset();  // no read transaction held while the commit waits
  if (recorded) {
    Outcome o = std::move(*recorded);
    const bool reused = o.fingerprint != 0 && o.fingerprint != fingerprint;
    return reply(commit_response(id, Decision{req.txn_id, false, std::move(o), true, reused}));
  }
  auto [it, first] = waiting_.try_emplace(req.txn_id, InFlight{fingerprint, {}});
  if (!first) {  // a retry of a transaction still in flight here: one answer serves both
    if (it->second.fingerprint != fingerprint)
      return reply(
          Response{id, error(ErrorCode::txn_id_reused,
                             fmt::format("transaction id '{}' is in use by a different transaction "
                                         "still in flight; nothing written: give this one a new id",
                                         req.txn_id))});
    it->second.waiters.push_back(Waiter{id, std::move(reply)});
    return;
  }
  WriteSet ws{node_uuid_, req.txn_id, std::move(req.reads), std::move(req.writes)};
  std::string payload = encode_writeset(ws);
  std::optional<ErrorReply> refused;
  if (payload.size() > limits_.max_writeset_bytes)
    refused = error(ErrorCode::too_large,
                    fmt::format("transaction of {} bytes is over the limit of {} bytes",
                                payload.size(), limits_.max_writeset_bytes));
  if (!refused) refused = check_writable(payload.size());
  if (!refused) {
    auto sent = group_.broadcast(std::move(payload));
    if (!sent.ok()) refused = error(to_error_code(sent.error), sent.message);
  }
  if (refused) {
    waiting_.erase(it);
    return reply(Response{id, *refused});
  }
  it->second.waiters.push_back(Waiter{id, std::move(reply)});
  schedule_flush();
}

void Node::group_changed() {
  if (group_.has_ready()) schedule_flush();
}

void Node::directory_changed() {
  directory_dirty_ = true;
  schedule_flush();
}

bool Node::transfer_done(uint64_t seqno, const std::map<gcs::NodeId, uint64_t>& sender_high) {
  TUTTI_INVARIANT(!persisting_,
                  "a state transfer ended while a batch from before it was on its "
                  "way to disk");
  TUTTI_INVARIANT(store_.read()->meta().last_committed == seqno,
                  "a state transfer to seqno {} left the store at seqno {}", seqno,
                  store_.read()->meta().last_committed);
  last_committed_ = seqno;
  const bool done = group_.member().transfer_done(seqno, sender_high);
  group_changed();
  return done;
}

void Node::schedule_flush() {
  if (flush_requested_) return;
  flush_requested_ = true;
  request_flush_();
}

void Node::flush() {
  flush_requested_ = false;
  if (persisting_) return;  // its outcome flushes again
  // A view change never waits behind a transfer write in the same batch: what it asks of this
  // member (a promise, a report, an install) goes in a batch of its own, at the group's
  // priority, and the transfer's write in the next.
  const gcs::Phase phase = group_.member().phase();
  const bool view_changing = phase == gcs::Phase::gathering || phase == gcs::Phase::installed;
  const bool transfer_write =
      joiner_ && joiner_->has_write() && !(view_changing && group_.has_ready());
  if (!group_.has_ready() && !directory_dirty_ && !transfer_write) return;
  // After a failed persist, try again now and then rather than at every tick.
  if (!persist_error_.empty() && store_.env().now() - persist_failed_at_ < kPersistRetry) return;
  const bool waiting_learner =
      group_.member().durable().needs_transfer && group_.view().learner(node_uuid_);
  // (The next tick flushes it.)
  if (waiting_learner && !directory_dirty_ && !transfer_write &&
      store_.env().now() - persist_started_ < kLearnerBatchInterval)
    return;
  PersistBatch batch{group_.ready(), std::nullopt, std::nullopt};
  batch.learner = waiting_learner;
  if (directory_dirty_ && directory_) batch.directory = gcs::encode_frame(directory_());
  directory_dirty_ = false;
  if (transfer_write) batch.transfer = joiner_->take_write(store_.env().now());
  persisting_ = true;
  // Nothing to write (heartbeats, say), and every batch before it is on disk: its messages need
  // not wait for a trip through the storage thread.
  if (batch.empty()) {
    PersistResult nothing_to_write;
    nothing_to_write.batch = std::move(batch);
    nothing_to_write.ok = true;
    return persisted(std::move(nothing_to_write));
  }
  const bool batch_has_transfer = batch.transfer.has_value();
  persist_started_ = store_.env().now();
  persist_backlog_ = batch.ready.append.size();
  // A batch of deliveries and log entries alone: its messages speak of its log, and leave as soon
  // as that is on disk, while its deliveries' LMDB commit goes on.
  if (batch.log_and_deliveries_only()) logged_sends_ = std::exchange(batch.ready.send, {});
  persister_->submit(
      std::move(batch), observer_ != nullptr, [this](PersistResult r) { persisted(std::move(r)); },
      [this](std::vector<Decision> early) { decided(std::move(early)); }, [this] { logged(); });
  if (batch_has_transfer) pull();  // the next chunk travels while this one is written
}

// A batch long on its way to disk holds this node's heartbeats with its other messages (they
// carry what it holds): meanwhile it says at once that it lives, so that a slow disk, or a
// transfer's batch on a busy machine, is not taken for a dead node and no view change follows.
// A voter whose write-sets wait for its disk past the flow-control bound asks the group to
// pause, as after a slow batch; a member held paused too long is evicted (docs/gcs.md).
void Node::keep_alive(storage::Clock::time_point now) {
  const auto interval = std::chrono::milliseconds(group_.member().heartbeat_interval());
  if (!persisting_ || now - persist_started_ < interval || now - alive_sent_ < interval) return;
  alive_sent_ = now;
  const bool voter = group_.primary() && !group_.view().learner(node_uuid_);
  const bool slow =
      voter && persist_backlog_ > 0 && now - persist_started_ > limits_.flow_pause_write_time;
  // Asking for a pause here can get this node evicted before its batch ends and adjust_flow
  // runs (by then in a view change): the eviction must be told all the same.
  paused_in_view_ = paused_in_view_ || slow;
  group_.send_alive(slow);
}

// The batch is on disk, or nothing of it is: send and answer, or hold it back to try again.
void Node::persisted(PersistResult r) {
  persisting_ = false;
  // The snapshot shows what was told early once the batch commits; until one does, snapshot
  // reads are refused (read_now).
  if (r.ok) told_early_ = false;
  batch_done(std::move(r));
  auto reads = std::move(after_commit_);
  after_commit_.clear();
  for (auto& rd : reads) read_now(std::move(rd.request), std::move(rd.reply));
  auto alone = std::move(alone_reads_);
  alone_reads_.clear();
  for (auto& rd : alone) read_after_marker(std::move(rd.request), std::move(rd.reply));
}

void Node::logged() {
  group_.send(logged_sends_);
  logged_sends_.clear();
}

void Node::batch_done(PersistResult r) {
  gcs::MemberReady& ready = r.batch.ready;
  // Not sent yet (the log's write failed, or this persister does not tell): they go with the
  // batch, now or when it is written again.
  ready.send.insert(ready.send.begin(), std::make_move_iterator(logged_sends_.begin()),
                    std::make_move_iterator(logged_sends_.end()));
  logged_sends_.clear();
  const size_t backlog = ready.append.size();
  if (!r.ok) {
    if (persist_error_.empty())
      spdlog::error(
          "could not persist {} log entries: {}; this node acknowledges nothing more and "
          "retries every {} ms",
          ready.append.size(), r.error, kPersistRetry.count());
    persist_error_ = r.error;
    persist_failed_at_ = store_.env().now();
    if (r.batch.directory) directory_dirty_ = true;
    if (r.batch.transfer && joiner_) joiner_->write_failed(std::move(*r.batch.transfer));
    group_.advance(std::move(ready), false);
    // Nothing it sends leaves until it can write, so reads waiting for a marker would hang.
    fail_reads(error(ErrorCode::storage, not_primary_reason()));
    return;
  }
  if (!persist_error_.empty()) spdlog::info("persisting works again");
  persist_error_.clear();
  auto events = std::move(ready.events);
  ready.events.clear();
  const uint64_t before = last_committed_;
  // What the batch's transaction left: deliveries and a transfer's writes alike.
  if (r.last_committed) last_committed_ = *r.last_committed;
  group_.advance(std::move(ready), true);
  after_persist(std::move(events), std::move(r.certified), before);
  after_transfer_write(r);
  // A joiner holds the group back only past its backlog bound; its disk's pace is no matter:
  // what it logs meanwhile waits for its transfer anyway. So does a learner that finished its
  // transfer and applies that backlog (JOINED): its acknowledgements do not gate the group's
  // deliveries, and a pause for its first, long batches would stop the group for nothing.
  if (group_.member().durable().needs_transfer || group_.view().learner(node_uuid_)) {
    joiner_flow();
  } else {
    if (backlog_paused_) {
      backlog_paused_ = false;
      group_.member().set_flow_pause(flow_.paused());
    }
    adjust_flow(backlog, r.write_time);
  }
  if (group_.has_ready() || directory_dirty_) schedule_flush();
}

void Node::after_persist(std::vector<gcs::Event> events, std::vector<Certified> certified,
                         uint64_t applied) {
  std::vector<const Decision*> decided;  // this node's own write-sets
  size_t next = 0;
  for (const auto& ev : events) {
    if (auto* v = std::get_if<gcs::ViewEvent>(&ev)) {
      // Virtual synchrony: a member passes into a primary view having applied up to its base,
      // or it waits for a state transfer.
      TUTTI_INVARIANT(!v->view.primary || v->self_needs_transfer || applied == v->view.base,
                      "primary view {}.{} at seqno {} entered at seqno {}", v->view.id.epoch,
                      uuid_text(v->view.id.coordinator), v->view.base, applied);
      on_view(*v);
      if (observer_) observer_->view_installed(*v);
      continue;
    }
    const auto& delivery = std::get<gcs::Delivery>(ev);
    TUTTI_INVARIANT(next < certified.size() && delivery.seqno == applied + 1,
                    "seqno {} applied after {} ({} of {} certified)", delivery.seqno, applied, next,
                    certified.size());
    applied = delivery.seqno;
    const Certified& c = certified[next++];
    if (observer_) observer_->applied(Applied{delivery, c.decision, c.hash});
    if (delivery.origin == node_uuid_) decided.push_back(&c.decision);
  }
  for (const Decision* dp : decided) {
    const Decision& d = *dp;
    if (d.marker) {
      serve(reads_.applied(d.txn_id));
      continue;
    }
    answer(d);  // unless told already (decided)
  }
}

// Outcomes of this batch's deliveries that the group cannot undo (decided_before_commit), told
// while the batch is on its way to disk: a commit's answer waits for one disk write, not two.
void Node::decided(std::vector<Decision> early) {
  for (const Decision& d : early) {
    if (d.marker) continue;  // a marker's reads need the snapshot that shows it
    if (waiting_.count(d.txn_id)) told_early_ = true;
    answer(d);
  }
}

void Node::answer(const Decision& d) {
  // Taken out first: a reply can bring in a new commit, which may rehash waiting_.
  auto waiters = waiting_.extract(d.txn_id);
  if (waiters.empty()) return;
  for (auto& w : waiters.mapped().waiters) w.reply(commit_response(w.request_id, d));
}

void Node::on_view(const gcs::ViewEvent& ev) {
  std::vector<std::string> names;
  for (const auto& m : ev.view.members) names.push_back(member_name(m));
  if (ev.view.primary) {
    spdlog::info("view {} installed: primary, {} members [{}], seqno {}", view_text(ev.view.id),
                 names.size(), fmt::join(names, ", "), ev.view.base);
  } else {
    spdlog::warn(
        "view {} installed: NON-PRIMARY, {} members [{}]: writes and linearizable reads "
        "are refused until a primary component forms; waiting for {}",
        view_text(ev.view.id), names.size(), fmt::join(names, ", "), waiting_for());
  }
  // The event is acted on once its batch is on disk; a transfer may have ended meanwhile (the
  // member then delivers already): only the member's present state says one is needed.
  if (ev.view.primary && ev.self_needs_transfer && group_.member().durable().needs_transfer)
    start_transfer(ev);
  for (const auto& j : ev.joiners)
    if (j != node_uuid_)
      spdlog::info(
          "member '{}' joins and needs a state transfer up to seqno {}; it has no vote until it "
          "catches up",
          member_name(j), ev.view.base);
  for (const auto& p : pausing_)
    if (std::find(ev.view.members.begin(), ev.view.members.end(), p) == ev.view.members.end())
      spdlog::warn(
          "member '{}' left the view while it held the group paused (flow control): "
          "evicted, or gone",
          member_name(p));
  // Evicted: the group went on in a primary view without this node while it held it paused.
  if (paused_in_view_ && (!ev.view.primary || ev.predecessor != last_primary_view_))
    spdlog::warn(
        "this node held the group paused (flow control) for too long and the group went "
        "on without it: evicted for falling behind; it rejoins once it catches up");
  if (ev.view.primary) last_primary_view_ = ev.view.id;
  pausing_ = group_.member().paused_by();
  paused_in_view_ = flow_.paused() && ev.view.primary && !ev.self_needs_transfer;
  if (!ev.view.primary || ev.self_needs_transfer)
    fail_reads(error(ErrorCode::not_primary,
                     "not primary: this node left the primary component while the read waited"));
  views_.add(ViewChange{0, view_text(ev.view.id), ev.view.primary, names, last_committed_});
}

// Flow control (core/flow_control.hpp): the members asking for a pause are logged as they come.
void Node::adjust_flow(size_t backlog, std::chrono::steady_clock::duration write_time) {
  auto& member = group_.member();
  const auto pausing = member.paused_by();
  for (const auto& p : pausing)
    if (p != node_uuid_ && std::find(pausing_.begin(), pausing_.end(), p) == pausing_.end())
      spdlog::info("member '{}' asks the group to pause (flow control)", member_name(p));
  pausing_ = pausing;
  switch (flow_.after_batch(backlog, write_time, store_.env().now())) {
    case FlowControl::Change::pause:
      spdlog::warn("{} write-sets took {} ms to reach this node's disk: asking the group to pause",
                   backlog,
                   std::chrono::duration_cast<std::chrono::milliseconds>(write_time).count());
      paused_in_view_ = paused_in_view_ || group_.primary();
      member.set_flow_pause(true);
      schedule_flush();
      break;
    case FlowControl::Change::resume:
      spdlog::info("caught up: letting the group go on");
      member.set_flow_pause(false);
      schedule_flush();
      break;
    case FlowControl::Change::none:
      break;
  }
}

}  // namespace tutti::core
