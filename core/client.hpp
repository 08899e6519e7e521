// A blocking client of the tutti client protocol, for the CLI tools and the tests. Every call has
// a deadline. Requests may be pipelined: send() several, then receive() their answers.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

#include "core/address.hpp"
#include "core/messages.hpp"

namespace tutti::core {

class ClientError : public std::runtime_error {
 public:
  enum class Kind {
    unreachable,  // could not connect: nothing was sent
    broken,       // the connection failed after sending: the outcome is unknown
    timeout,      // no answer in time: the outcome is unknown
    protocol      // the node answered something that is not a valid frame
  };
  ClientError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class Client {
 public:
  explicit Client(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~Client();

  void connect(const HostPort& node);
  bool connected() const { return socket_.is_open(); }
  const HostPort& node() const { return node_; }

  // Sends with a fresh request id and returns it.
  uint64_t send(Request request);
  Response receive();
  // send() then receive() the answer with that id.
  Response call(Request request);

  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  void run_until(bool& done, const char* what, ClientError::Kind on_timeout);
  void close();

  asio::io_context io_;
  asio::ip::tcp::socket socket_;
  std::chrono::milliseconds timeout_;
  HostPort node_;
  uint64_t next_id_ = 1;
  size_t max_frame_bytes_ = 64u << 20;
};

}  // namespace tutti::core
