// tuttid's TransferLink: a joiner's pulls go out on a thread of their own, over a blocking
// client connection to the donor's client address (kept while the donor stays the same), and
// each answer is posted back to the node's loop. One pull at a time, as the Joiner sends them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/client.hpp"
#include "core/messages.hpp"
#include "core/worker_thread.hpp"

namespace tutti::core {

class TransferFetcher {
 public:
  using Done = std::function<void(std::optional<Response>)>;
  // post: runs a function on the node's loop.
  explicit TransferFetcher(std::function<void(std::function<void()>)> post);
  // The pull under way, if any, ends first (bounded by its timeout).
  // Sends request to the node at address (HOST:PORT); done runs on the loop.
  void fetch(std::string address, Request request, Done done);

 private:
  std::optional<Response> call(const std::string& address, Request request);
  // Touched on the worker's thread only.
  std::unique_ptr<Client> client_;
  std::string connected_to_;
  WorkerThread worker_;  // last: joined before the connection goes
};

}  // namespace tutti::core
