// tuttid's TransferLink: a joiner's pulls go out on a thread of their own, over a blocking
// client connection to the donor's client address (kept while the donor stays the same), and
// each answer is posted back to the node's loop. One pull at a time, as the Joiner sends them.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/client.hpp"
#include "core/messages.hpp"

namespace tutti::core {

class TransferFetcher {
 public:
  using Done = std::function<void(std::optional<Response>)>;
  // post: runs a function on the node's loop.
  explicit TransferFetcher(std::function<void(std::function<void()>)> post);
  ~TransferFetcher();  // the pull under way, if any, ends first (bounded by its timeout)
  // Sends request to the node at address (HOST:PORT); done runs on the loop.
  void fetch(std::string address, Request request, Done done);

 private:
  void run();
  struct Job {
    std::string address;
    Request request;
    Done done;
  };
  std::function<void(std::function<void()>)> post_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::optional<Job> job_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tutti::core
