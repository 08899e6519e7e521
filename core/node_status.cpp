// What a node tells operators and clients about itself: its state, why it is not primary and
// what it waits for, its members.
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/node.hpp"
#include "core/uuid.hpp"

namespace tutti::core {

std::string view_text(const gcs::ViewKey& id) {
  return fmt::format("{}.{}", id.epoch, uuid_text(id.coordinator).substr(0, 8));
}

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

std::string Node::not_primary_reason() const {
  if (!persist_error_.empty())
    return "not primary: this node cannot write to its data dir (" + persist_error_ +
           "), so the group goes on without it";
  if (auto e = catching_up()) return e->message;
  return "not primary: " + waiting_for();
}

// What a node outside the primary component waits for, in an operator's words.
std::string Node::waiting_for() const {
  if (!persist_error_.empty())
    return "its data dir to take writes again (" + persist_error_ + "); retried every " +
           std::to_string(kPersistRetry.count()) + " ms";
  if (group_.primary()) return "";
  const auto& d = group_.member().durable();
  if (d.needs_transfer)
    return joiner_
               ? joiner_->describe()
               : fmt::format("a state transfer: it applied up to seqno {}, the group is further",
                             last_committed_);
  if (!d.last_primary)
    return "a primary component to join (it has never been in one: start the first node with "
           "--bootstrap, the others with --peers)";
  const auto& view = group_.view();
  std::vector<std::string> here, missing;
  for (const auto& m : d.last_primary->members) {
    const bool in = std::find(view.members.begin(), view.members.end(), m) != view.members.end();
    (in ? here : missing).push_back(member_name(m));
  }
  const bool memory = store_.options().durability == storage::Durability::memory;
  return fmt::format(
      "{} of the last primary view {} ({}): this node's component holds {}; missing {}{}",
      memory ? "all (memory durability, after a crash of every member) or a majority"
             : "a majority",
      view_text(d.last_primary->id), d.last_primary->members.size(),
      here.empty() ? "none of them" : fmt::format("{}", fmt::join(here, ", ")),
      fmt::join(missing, ", "),
      group_.member().phase() == gcs::Phase::operational ? "" : " (a view change is under way)");
}

std::string Node::member_name(const gcs::NodeId& id) const {
  if (id == node_uuid_) return name_;
  if (directory_)
    for (const auto& p : directory_())
      if (p.uuid == id && !p.name.empty()) return p.name;
  return uuid_text(id).substr(0, 8);
}

// JOINING while behind (or outside a primary component), JOINED once a transfer caught it up and
// until the view change that gives it its vote, DONOR while it serves a transfer.
NodeState Node::state() const {
  if (!primary()) return NodeState::joining;
  if (group_.view().learner(node_uuid_)) return NodeState::joined;
  if (donor_.active(store_.env().now())) return NodeState::donor;
  return NodeState::synced;
}

// Primary as clients should see it: a node that cannot persist acknowledges nothing, and the
// group has gone on without it whatever its own view still says.
bool Node::primary() const {
  return group_.primary() && persist_error_.empty();
}

StatusReply Node::status() const {
  auto txn = store_.read();
  const auto& meta = txn->meta();
  const auto& view = group_.view();
  StatusReply s;
  s.name = name_;
  s.state = to_string(state());
  s.primary = primary();
  s.cluster_size = static_cast<uint32_t>(view.members.size());
  s.last_committed = meta.last_committed;
  s.history_uuid = meta.history_uuid.empty() ? "" : uuid_text(meta.history_uuid);
  s.content_hash = meta.content_hash.hex();
  s.node_uuid = uuid_text(meta.node_uuid);
  s.durability = store_.options().durability == storage::Durability::fsync ? "fsync" : "memory";
  s.view_id = view_text(view.id);
  for (const auto& p : group_.member().paused_by()) s.paused_by.push_back(member_name(p));
  s.waiting_for = waiting_for();
  s.transfer =
      joiner_ ? joiner_->progress(store_.env().now()) : donor_.progress(store_.env().now());
  return s;
}

MembersReply Node::members() const {
  MembersReply out;
  const auto& view = group_.view();
  out.view_id = view_text(view.id);
  out.primary = view.primary && group_.member().phase() == gcs::Phase::operational;
  const auto paused = group_.member().paused_by();
  const gcs::Directory dir = directory_ ? directory_() : gcs::Directory{};
  for (const auto& id : view.members) {
    MemberEntry e;
    e.uuid = uuid_text(id);
    e.pausing = std::find(paused.begin(), paused.end(), id) != paused.end();
    for (const auto& p : dir)
      if (p.uuid == id) {
        e.name = p.name;
        e.gcs_addr = p.gcs_addr;
        e.client_addr = p.client_addr;
        e.state = p.state;
        e.last_committed = p.last_committed;
      }
    if (id == node_uuid_) {
      e.name = name_;
      e.state = to_string(state());
      e.last_committed = last_committed_;
    }
    out.members.push_back(std::move(e));
  }
  return out;
}

}  // namespace tutti::core
