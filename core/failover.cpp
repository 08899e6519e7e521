#include "core/failover.hpp"

#include <optional>

#include <fmt/format.h>

#include "core/client.hpp"

namespace tutti::core {

Response request_any(const std::vector<HostPort>& nodes, const Request& request,
                     std::chrono::milliseconds timeout) {
  const bool is_commit = std::holds_alternative<CommitRequest>(request.body);
  Client client(timeout);
  bool maybe_sent = false;
  std::optional<Response> refused;
  std::string last_error = "no node given";
  for (const auto& node : nodes) {
    try {
      client.connect(node);
      Response r = client.call(request);
      const auto* err = std::get_if<ErrorReply>(&r.body);
      if (err && (err->code == ErrorCode::not_primary || err->code == ErrorCode::unavailable ||
                  err->code == ErrorCode::busy)) {
        refused = r;  // another node may be able to serve it
        continue;
      }
      return r;
    } catch (const ClientError& e) {
      last_error = e.what();
      if (e.kind() != ClientError::Kind::unreachable) maybe_sent = true;
    }
  }
  // A commit that may have reached a node that then went silent has an unknown outcome, whatever
  // the other nodes said: they refused it, they did not decide it.
  if (is_commit && maybe_sent)
    throw FailoverError(true,
                        fmt::format("outcome unknown: {}; retry with --txn-id {} to learn "
                                    "the outcome without applying twice",
                                    last_error, std::get<CommitRequest>(request.body).txn_id));
  if (refused) return *refused;
  throw FailoverError(false, "unavailable: " + last_error);
}

}  // namespace tutti::core
