#include "core/admission.hpp"

#include <set>

#include <fmt/format.h>

namespace tutti::core {

std::optional<ErrorReply> check_key(std::string_view key, const NodeLimits& limits) {
  if (key.empty()) return error_reply(ErrorCode::bad_request, "empty key");
  if (key.size() > limits.max_key_bytes)
    return error_reply(ErrorCode::too_large,
                       fmt::format("key of {} bytes is over the limit of {} bytes", key.size(),
                                   limits.max_key_bytes));
  return std::nullopt;
}

std::optional<ErrorReply> check_commit(const CommitRequest& req, const NodeLimits& limits) {
  if (req.txn_id.empty())
    return error_reply(ErrorCode::bad_request, "commit without a transaction id");
  if (req.txn_id.size() > limits.max_txn_id_bytes)
    return error_reply(ErrorCode::bad_request,
                       fmt::format("transaction id over {} bytes", limits.max_txn_id_bytes));
  if (req.reads.empty() && req.writes.empty())
    return error_reply(ErrorCode::bad_request, "empty transaction: no reads and no writes");
  for (const auto& r : req.reads)
    if (auto e = check_key(r.key, limits)) return e;
  std::set<std::string_view> written;
  for (const auto& w : req.writes) {
    if (auto e = check_key(w.key, limits)) return e;
    if (w.value && w.value->size() > limits.max_value_bytes)
      return error_reply(ErrorCode::too_large,
                         fmt::format("value of {} bytes for key {} is over the limit of {} bytes",
                                     w.value->size(), w.key, limits.max_value_bytes));
    if (!written.insert(w.key).second)
      return error_reply(ErrorCode::bad_request, fmt::format("key {} is written twice", w.key));
  }
  return std::nullopt;
}

uint64_t FreeSpace::take(uint64_t reserve) {
  const auto now = store_.env().now();
  if (now - checked_at_ > std::chrono::milliseconds(100) || cache_ < (64u << 20)) {
    cache_ = store_.free_bytes();
    checked_at_ = now;
  }
  const uint64_t free = cache_;
  cache_ = cache_ > reserve ? cache_ - reserve : 0;
  return free;
}

}  // namespace tutti::core
