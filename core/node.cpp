#include "core/node.hpp"

#include <set>

#include <spdlog/spdlog.h>

#include "core/applier.hpp"
#include "core/codec.hpp"
#include "core/uuid.hpp"

namespace tutti::core {
namespace {

ErrorReply error(ErrorCode code, std::string message) {
  return ErrorReply{code, std::move(message)};
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
  if (!d.outcome.rejected.empty())
    return Response{id, error(ErrorCode::bad_request, "write-set rejected: " + d.outcome.rejected)};
  return Response{
      id, CommitReply{d.outcome.committed, d.outcome.seqno, d.outcome.conflict_keys, d.duplicate}};
}

}  // namespace

const char* to_string(NodeState state) {
  switch (state) {
    case NodeState::joining:
      return "JOINING";
    case NodeState::joined:
      return "JOINED";
    case NodeState::synced:
      return "SYNCED";
    case NodeState::donor:
      return "DONOR";
  }
  return "UNKNOWN";
}

Node::Node(std::string name, storage::Store& store, std::unique_ptr<gcs::Group> group,
           NodeLimits limits, std::function<void()> request_flush)
    : name_(std::move(name)),
      store_(store),
      group_(std::move(group)),
      limits_(limits),
      request_flush_(std::move(request_flush)) {
  if (group_->has_ready()) schedule_flush();
}

void Node::handle(Request request, ReplyFn reply) {
  const uint64_t id = request.id;
  try {
    if (auto* g = std::get_if<GetRequest>(&request.body)) {
      get(id, *g, reply);
    } else if (auto* s = std::get_if<ScanRequest>(&request.body)) {
      scan(id, *s, reply);
    } else if (auto* c = std::get_if<CommitRequest>(&request.body)) {
      commit(id, std::move(*c), std::move(reply));
    } else {
      reply(Response{id, status()});
    }
  } catch (const storage::StorageError& e) {
    spdlog::error("request {} failed in storage: {}", id, e.what());
    reply(Response{id, error(ErrorCode::storage, e.what())});
  }
}

std::optional<ErrorReply> Node::validate_key(std::string_view key) const {
  if (key.empty()) return error(ErrorCode::bad_request, "empty key");
  if (key.size() > limits_.max_key_bytes)
    return error(ErrorCode::too_large, fmt::format("key of {} bytes is over the limit of {} bytes",
                                                   key.size(), limits_.max_key_bytes));
  return std::nullopt;
}

std::optional<ErrorReply> Node::check_readable(Consistency consistency) const {
  if (consistency == Consistency::linearizable && !group_->view().primary)
    return error(ErrorCode::not_primary,
                 "not primary: this node is not in the primary component; a --local read "
                 "answers from its (possibly stale) snapshot");
  return std::nullopt;
}

// A linearizable read must see everything committed cluster-wide before it arrived. In a group of
// one every commit is applied before its client hears of it, so the node's snapshot already is.
void Node::get(uint64_t id, const GetRequest& req, const ReplyFn& reply) {
  if (auto e = validate_key(req.key)) return reply(Response{id, *e});
  if (auto e = check_readable(req.consistency)) return reply(Response{id, *e});
  auto value = store_.read()->get(req.key);
  ValueReply out;
  out.may_be_stale = req.consistency == Consistency::local &&
                     (!group_->view().primary || group_->view().members.size() > 1);
  if (value) {
    out.found = true;
    out.value = std::move(value->value);
    out.version = value->version;
  }
  reply(Response{id, std::move(out)});
}

void Node::scan(uint64_t id, const ScanRequest& req, const ReplyFn& reply) {
  if (req.prefix.size() > limits_.max_key_bytes)
    return reply(Response{id, error(ErrorCode::too_large, "prefix is longer than the key limit")});
  if (auto e = check_readable(req.consistency)) return reply(Response{id, *e});
  const uint32_t limit =
      req.limit == 0 ? limits_.max_scan_entries : std::min(req.limit, limits_.max_scan_entries);
  auto entries = store_.read()->scan(req.prefix, limit);
  ScanReply out;
  out.may_be_stale = req.consistency == Consistency::local &&
                     (!group_->view().primary || group_->view().members.size() > 1);
  size_t bytes = 0;
  for (auto& e : entries) {
    bytes += e.key.size() + e.value.size() + 32;
    if (bytes > limits_.max_scan_reply_bytes) {
      out.truncated = true;
      break;
    }
    out.entries.push_back(KeyValue{std::move(e.key), std::move(e.value), e.version});
  }
  if (req.limit > limits_.max_scan_entries && entries.size() == limit) out.truncated = true;
  reply(Response{id, std::move(out)});
}

std::optional<ErrorReply> Node::validate(const CommitRequest& req) const {
  if (req.txn_id.empty()) return error(ErrorCode::bad_request, "commit without a transaction id");
  if (req.txn_id.size() > limits_.max_txn_id_bytes)
    return error(ErrorCode::bad_request,
                 fmt::format("transaction id over {} bytes", limits_.max_txn_id_bytes));
  if (req.reads.empty() && req.writes.empty())
    return error(ErrorCode::bad_request, "empty transaction: no reads and no writes");
  for (const auto& r : req.reads)
    if (auto e = validate_key(r.key)) return e;
  std::set<std::string_view> written;
  for (const auto& w : req.writes) {
    if (auto e = validate_key(w.key)) return e;
    if (w.value && w.value->size() > limits_.max_value_bytes)
      return error(ErrorCode::too_large,
                   fmt::format("value of {} bytes for key {} is over the limit of {} bytes",
                               w.value->size(), w.key, limits_.max_value_bytes));
    if (!written.insert(w.key).second)
      return error(ErrorCode::bad_request, fmt::format("key {} is written twice", w.key));
  }
  return std::nullopt;
}

void Node::commit(uint64_t id, CommitRequest req, ReplyFn reply) {
  if (auto e = validate(req)) return reply(Response{id, *e});
  if (!group_->view().primary)
    return reply(Response{id, error(ErrorCode::not_primary,
                                    "not primary: this node is not in the primary component")});
  if (auto recorded = store_.read()->txn_outcome(req.txn_id)) {
    return reply(commit_response(id, Decision{req.txn_id, decode_outcome(*recorded), true}));
  }
  auto [it, first] = waiting_.try_emplace(req.txn_id);
  if (!first) {  // a retry of a transaction still in flight here: one answer serves both
    it->second.push_back(Waiter{id, std::move(reply)});
    return;
  }
  WriteSet ws{store_.read()->meta().node_uuid, req.txn_id, std::move(req.reads),
              std::move(req.writes)};
  std::string payload = encode_writeset(ws);
  if (payload.size() > limits_.max_writeset_bytes) {
    waiting_.erase(it);
    return reply(
        Response{id, error(ErrorCode::too_large,
                           fmt::format("transaction of {} bytes is over the limit of {} bytes",
                                       payload.size(), limits_.max_writeset_bytes))});
  }
  auto sent = group_->broadcast(std::move(payload));
  if (!sent.ok()) {
    waiting_.erase(it);
    return reply(Response{id, error(to_error_code(sent.error), sent.message)});
  }
  it->second.push_back(Waiter{id, std::move(reply)});
  schedule_flush();
}

void Node::schedule_flush() {
  if (flush_requested_) return;
  flush_requested_ = true;
  request_flush_();
}

void Node::flush() {
  flush_requested_ = false;
  if (!group_->has_ready()) return;
  gcs::Ready ready = group_->ready();
  std::vector<Decision> decided;
  try {
    store_.write([&](storage::WriteTxn& txn) {
      decided.clear();
      for (const auto& d : ready.persist) txn.log_append(d.seqno, d.payload);
      for (const auto& d : ready.deliver) {
        Decision decision = certify_and_apply(txn, d.seqno, d.payload);
        if (waiting_.count(decision.txn_id)) decided.push_back(std::move(decision));
      }
    });
  } catch (const std::exception& e) {  // storage, or a record that no longer decodes
    group_->advance(ready, false);
    spdlog::error("could not persist {} write-sets, none committed: {}", ready.persist.size(),
                  e.what());
    for (const auto& d : ready.deliver) {
      try {
        auto it = waiting_.find(decode_writeset(d.payload).txn_id);
        if (it == waiting_.end()) continue;
        for (auto& w : it->second)
          w.reply(Response{w.request_id,
                           error(ErrorCode::storage, std::string("not committed: ") + e.what())});
        waiting_.erase(it);
      } catch (const DecodeError&) {
      }
    }
    return;
  }
  group_->advance(ready, true);
  for (const Decision& d : decided) {
    auto it = waiting_.find(d.txn_id);
    if (it == waiting_.end()) continue;
    for (auto& w : it->second) w.reply(commit_response(w.request_id, d));
    waiting_.erase(it);
  }
  if (group_->has_ready()) schedule_flush();
}

StatusReply Node::status() const {
  auto txn = store_.read();
  const auto& meta = txn->meta();
  const auto& view = group_->view();
  StatusReply s;
  s.name = name_;
  s.state = to_string(state_);
  s.primary = view.primary;
  s.cluster_size = static_cast<uint32_t>(view.members.size());
  s.last_committed = meta.last_committed;
  s.history_uuid = uuid_text(meta.history_uuid);
  s.content_hash = meta.content_hash.hex();
  s.node_uuid = uuid_text(meta.node_uuid);
  s.durability = store_.options().durability == storage::Durability::fsync ? "fsync" : "memory";
  s.view_id = fmt::format("{}.{}", view.id.epoch, uuid_text(view.id.coordinator).substr(0, 8));
  return s;
}

}  // namespace tutti::core
