// A tutti node's replication logic: client requests in, write-sets through the group, certified
// deliveries applied to storage, replies out (DESIGN.md §2). No sockets or timers here: the
// server (core/server.hpp) feeds it requests and calls flush() when asked to.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/messages.hpp"
#include "gcs/group.hpp"
#include "storage/store.hpp"

namespace tutti::core {

struct NodeLimits {
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 1u << 20;
  size_t max_txn_id_bytes = 128;
  size_t max_writeset_bytes = 16u << 20;
  uint32_t max_scan_entries = 100000;
  size_t max_scan_reply_bytes = 16u << 20;
};

enum class NodeState { joining, joined, synced, donor };
const char* to_string(NodeState state);

using ReplyFn = std::function<void(Response)>;

class Node {
 public:
  // request_flush is called (at most once until flush() runs) when the group has work ready.
  Node(std::string name, storage::Store& store, std::unique_ptr<gcs::Group> group,
       NodeLimits limits, std::function<void()> request_flush);

  void handle(Request request, ReplyFn reply);
  // Persists and applies what the group has ready, then answers the commits it decided.
  void flush();
  StatusReply status() const;

  const std::string& name() const { return name_; }

 private:
  struct Waiter {
    uint64_t request_id;
    ReplyFn reply;
  };

  void get(uint64_t id, const GetRequest& req, const ReplyFn& reply);
  void scan(uint64_t id, const ScanRequest& req, const ReplyFn& reply);
  void commit(uint64_t id, CommitRequest req, ReplyFn reply);
  std::optional<ErrorReply> validate(const CommitRequest& req) const;
  std::optional<ErrorReply> validate_key(std::string_view key) const;
  std::optional<ErrorReply> check_readable(Consistency consistency) const;
  void answer(const std::string& txn_id, const Response& body_template);
  void schedule_flush();

  std::string name_;
  storage::Store& store_;
  std::unique_ptr<gcs::Group> group_;
  NodeLimits limits_;
  std::function<void()> request_flush_;
  bool flush_requested_ = false;
  NodeState state_ = NodeState::synced;
  // Commits broadcast by this node that await their delivery, by transaction id.
  std::unordered_map<std::string, std::vector<Waiter>> waiting_;
};

}  // namespace tutti::core
