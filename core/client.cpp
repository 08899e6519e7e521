#include "core/client.hpp"

#include <memory>

#include <fmt/format.h>

#include "core/codec.hpp"

namespace tutti::core {

using asio::ip::tcp;

Client::Client(std::chrono::milliseconds timeout) : socket_(io_), timeout_(timeout) {}

Client::~Client() {
  close();
}

void Client::close() {
  asio::error_code ec;
  socket_.close(ec);
}

// Runs the io_context until done is set or the deadline passes; on a deadline, the socket is
// closed (the stream is then out of step) and a ClientError of kind on_timeout is thrown.
void Client::run_until(bool& done, const char* what, ClientError::Kind on_timeout) {
  io_.restart();
  io_.run_for(timeout_);
  if (done) return;
  close();
  io_.restart();
  io_.run();  // lets the cancelled handler run, so nothing refers to stale locals
  throw ClientError(on_timeout, fmt::format("{} {}: no answer within {} ms", what, node_.text(),
                                            timeout_.count()));
}

void Client::connect(const HostPort& node) {
  close();
  node_ = node;
  asio::error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = resolver.resolve(node.host, std::to_string(node.port), ec);
  if (ec)
    throw ClientError(ClientError::Kind::unreachable,
                      fmt::format("cannot resolve {}: {}", node.text(), ec.message()));
  bool done = false;
  asio::error_code result;
  socket_ = tcp::socket(io_);
  asio::async_connect(socket_, endpoints, [&](asio::error_code e, const tcp::endpoint&) {
    result = e;
    done = true;
  });
  run_until(done, "connecting to", ClientError::Kind::unreachable);
  if (result) {
    close();
    throw ClientError(ClientError::Kind::unreachable,
                      fmt::format("cannot connect to {}: {}", node.text(), result.message()));
  }
  socket_.set_option(tcp::no_delay(true), ec);
}

uint64_t Client::send(Request request) {
  if (!socket_.is_open())
    throw ClientError(ClientError::Kind::unreachable, "not connected to a node");
  request.id = next_id_++;
  const std::string bytes = frame(encode_request(request));
  bool done = false;
  asio::error_code result;
  asio::async_write(socket_, asio::buffer(bytes), [&](asio::error_code e, size_t) {
    result = e;
    done = true;
  });
  run_until(done, "sending to", ClientError::Kind::broken);
  if (result) {
    close();
    throw ClientError(ClientError::Kind::broken,
                      fmt::format("connection to {} failed: {}", node_.text(), result.message()));
  }
  return request.id;
}

Response Client::receive() {
  if (!socket_.is_open()) throw ClientError(ClientError::Kind::broken, "not connected to a node");
  std::array<char, kFrameHeaderBytes> header{};
  // Word-aligned and not zeroed first: the decoder reads it in place (a donor's chunk is
  // megabytes).
  std::unique_ptr<uint64_t[]> body;
  uint32_t length = 0;
  bool done = false;
  asio::error_code result;
  asio::async_read(socket_, asio::buffer(header), [&](asio::error_code e, size_t) {
    if (e) {
      result = e;
      done = true;
      return;
    }
    length = frame_length(std::string_view(header.data(), header.size()));
    if (length > max_frame_bytes_) {
      result = asio::error::message_size;
      done = true;
      return;
    }
    body.reset(new uint64_t[(length + 7) / 8]);
    asio::async_read(socket_, asio::buffer(body.get(), length), [&](asio::error_code e2, size_t) {
      result = e2;
      done = true;
    });
  });
  run_until(done, "waiting for", ClientError::Kind::timeout);
  if (result) {
    close();
    throw ClientError(ClientError::Kind::broken,
                      fmt::format("connection to {} failed: {}", node_.text(), result.message()));
  }
  try {
    return decode_response(std::string_view(reinterpret_cast<const char*>(body.get()), length));
  } catch (const DecodeError& e) {
    close();
    throw ClientError(ClientError::Kind::protocol,
                      fmt::format("bad answer from {}: {}", node_.text(), e.what()));
  }
}

Response Client::call(Request request) {
  const uint64_t id = send(std::move(request));
  for (;;) {
    Response r = receive();
    if (r.id == id) return r;
    if (r.id == 0) return r;  // a connection-level error: the node closes after it
  }
}

}  // namespace tutti::core
