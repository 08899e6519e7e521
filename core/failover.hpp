// The client's failover rule: which node answers a request when several are given. The first
// that answers serves it; a node that is not primary, busy or unavailable passes it on to the
// next. A commit whose connection broke after it was sent may have been applied: it is sent on
// with the same transaction id (the cluster answers a retry from its record, never applying twice),
// and if no node decides it, its outcome is unknown - which is said, not guessed.
#pragma once

#include <chrono>
#include <stdexcept>
#include <vector>

#include "core/address.hpp"
#include "core/messages.hpp"

namespace tutti::core {

class FailoverError : public std::runtime_error {
 public:
  // outcome_unknown: a commit may have reached a node that then went silent.
  FailoverError(bool outcome_unknown, const std::string& what)
      : std::runtime_error(what), outcome_unknown_(outcome_unknown) {}
  bool outcome_unknown() const { return outcome_unknown_; }

 private:
  bool outcome_unknown_;
};

// The answer of the first node that serves the request (or the last refusal, when all refuse).
// Throws FailoverError when none answers.
Response request_any(const std::vector<HostPort>& nodes, const Request& request,
                     std::chrono::milliseconds timeout);

}  // namespace tutti::core
