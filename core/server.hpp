// The client protocol server: framed Cap'n Proto requests over TCP (core/codec.hpp), pipelined
// by request id, answered by a Node. Runs on one Asio io_context, the Node's thread.
//
// No client can take the server from the others: connections are capped (below the process's
// descriptor limit), one past the cap is answered `busy` before it is closed, idle connections
// and frames that stop half-way are closed after a timeout, and the bytes of partly received
// frames are bounded over all connections together, not only per connection.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <memory>
#include <unordered_map>

#include "core/node.hpp"

namespace tutti::core {

struct ServerLimits {
  size_t max_frame_bytes = 20u << 20;
  size_t max_connections = 1024;
  size_t max_in_flight_per_connection = 4096;  // reading pauses beyond this many unanswered
  // A connection with nothing in flight and nothing received this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
  // A frame must arrive whole within this long of its first byte.
  std::chrono::milliseconds frame_timeout{10000};
  // Bytes of partly received frames over all connections: past it, the connection that would
  // add more is answered busy and closed.
  size_t max_buffered_bytes = 256u << 20;
};

// The connection cap that fits the process's descriptor limit (raising the soft limit to the
// hard one first), keeping `reserve` descriptors for storage, group links and logs. Says what it
// chose in the log.
size_t connection_cap(size_t wanted, size_t reserve = 128);

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
  void on_accept_error(const asio::error_code& ec);
  void sweep();
  void forget(Session* session) { sessions_.erase(session); }

  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_, sweep_timer_;
  Node& node_;
  ServerLimits limits_;
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
  size_t closing_ = 0;            // sessions told why they close: not counted against the cap
  uint64_t refused_ = 0;          // connections refused since one was last accepted
  size_t buffered_bytes_ = 0;     // partly received frames, all sessions
  uint64_t accept_failures_ = 0;  // in the current episode of failing accepts
  bool stopped_ = false;
};

}  // namespace tutti::core
