// The client protocol server: framed Cap'n Proto requests over TCP (core/codec.hpp), pipelined
// by request id, answered by a Node. Runs on one Asio io_context, the Node's thread.
#pragma once

#include <asio.hpp>

#include <memory>
#include <unordered_map>

#include "core/node.hpp"

namespace tutti::core {

struct ServerLimits {
  size_t max_frame_bytes = 20u << 20;
  size_t max_connections = 1024;
  size_t max_in_flight_per_connection = 4096;  // reading pauses beyond this many unanswered
};

class Session;

class ClientServer {
 public:
  // Binds and listens at once: throws asio::system_error (say, address in use).
  ClientServer(asio::io_context& io, const asio::ip::tcp::endpoint& endpoint, Node& node,
               ServerLimits limits);
  ~ClientServer();
  asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  // Stops accepting and closes every connection.
  void stop();

 private:
  friend class Session;
  void accept();
  void forget(Session* session) { sessions_.erase(session); }

  asio::ip::tcp::acceptor acceptor_;
  Node& node_;
  ServerLimits limits_;
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
};

}  // namespace tutti::core
