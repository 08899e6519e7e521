#include "core/server.hpp"

#include <deque>

#include <spdlog/spdlog.h>

#include "core/codec.hpp"

namespace tutti::core {

using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ClientServer& owner)
      : socket_(std::move(socket)), owner_(owner), limits_(owner.limits_) {
    asio::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("unknown peer")
               : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    socket_.set_option(tcp::no_delay(true), ec);
  }

  void start() { read_more(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    owner_.forget(this);  // may drop the last owner's reference; handlers hold their own
  }

  void reply(const Response& response) {
    if (in_flight_ > 0) --in_flight_;
    if (closed_) return;
    send(response);
    if (paused_ && in_flight_ <= limits_.max_in_flight_per_connection / 2) {
      paused_ = false;
      process_input();
    }
  }

 private:
  bool reading_allowed() const { return !closed_ && !close_after_write_ && !paused_; }

  // Reads what the socket holds; every complete frame in it is handled before the next read, so
  // the requests a pipelining client sent together reach the same flush (one group commit).
  void read_more() {
    if (reading_ || !reading_allowed()) return;
    reading_ = true;
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](asio::error_code ec, size_t n) {
                              self->reading_ = false;
                              if (ec == asio::error::eof) {
                                // The client is done sending: answer what it asked, then close.
                                self->close_after_write_ = true;
                                return self->write_next();
                              }
                              if (ec) return self->close();
                              self->in_.append(self->chunk_.data(), n);
                              self->process_input();
                            });
  }

  void process_input() {
    while (reading_allowed() && in_.size() - in_pos_ >= kFrameHeaderBytes) {
      const uint32_t length = frame_length(std::string_view(in_).substr(in_pos_));
      if (length > limits_.max_frame_bytes)
        return fail(ErrorCode::too_large,
                    fmt::format("frame of {} bytes is over the limit of {} bytes", length,
                                limits_.max_frame_bytes));
      if (in_.size() - in_pos_ - kFrameHeaderBytes < length) break;  // the rest is on its way
      const std::string_view payload(in_.data() + in_pos_ + kFrameHeaderBytes, length);
      in_pos_ += kFrameHeaderBytes + length;
      handle_frame(payload);
    }
    if (in_pos_ == in_.size() || in_pos_ > (1u << 20)) {
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    read_more();
  }

  void handle_frame(std::string_view payload) {
    Request request;
    try {
      request = decode_request(payload);
    } catch (const VersionError& e) {
      return fail(ErrorCode::unsupported_version, e.what());
    } catch (const DecodeError& e) {
      return fail(ErrorCode::bad_request, e.what());
    }
    ++in_flight_;
    std::weak_ptr<Session> weak = weak_from_this();
    owner_.node_.handle(std::move(request), [weak](Response r) {
      if (auto self = weak.lock()) self->reply(r);
    });
    // The client must read its answers before it may send more.
    if (in_flight_ >= limits_.max_in_flight_per_connection) paused_ = true;
  }

  // A frame we cannot parse leaves the stream out of step: answer why, then close.
  void fail(ErrorCode code, const std::string& why) {
    spdlog::warn("client {}: {}; closing the connection", peer_, why);
    close_after_write_ = true;
    send(Response{0, ErrorReply{code, why}});
  }

  void send(const Response& response) {
    out_.push_back(frame(encode_response(response)));
    write_next();
  }

  void write_next() {
    if (writing_ || closed_) return;
    if (out_.empty()) {
      if (close_after_write_ && in_flight_ == 0) close();
      return;
    }
    writing_ = true;
    // Everything queued goes out in one write: pipelined answers share a syscall.
    writing_buf_.clear();
    for (auto& f : out_) writing_buf_ += f;
    out_.clear();
    asio::async_write(socket_, asio::buffer(writing_buf_),
                      [self = shared_from_this()](asio::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) return self->close();
                        self->write_next();
                      });
  }

  tcp::socket socket_;
  ClientServer& owner_;
  ServerLimits limits_;
  std::string peer_;
  std::array<char, 64 * 1024> chunk_{};
  std::string in_;  // bytes read and not yet handled start at in_pos_
  size_t in_pos_ = 0;
  bool reading_ = false;
  std::deque<std::string> out_;
  std::string writing_buf_;
  size_t in_flight_ = 0;
  bool writing_ = false;
  bool paused_ = false;
  bool closed_ = false;
  bool close_after_write_ = false;
};

ClientServer::ClientServer(asio::io_context& io, const tcp::endpoint& endpoint, Node& node,
                           ServerLimits limits)
    : acceptor_(io), node_(node), limits_(limits) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  accept();
}

ClientServer::~ClientServer() {
  stop();
}

void ClientServer::stop() {
  asio::error_code ec;
  acceptor_.close(ec);
  auto sessions = std::move(sessions_);
  for (auto& [ptr, session] : sessions) session->close();
}

void ClientServer::accept() {
  acceptor_.async_accept([this](asio::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (sessions_.size() >= limits_.max_connections) {
        spdlog::warn("refusing a client connection: {} connections already open", sessions_.size());
        asio::error_code ignored;
        socket.close(ignored);
      } else {
        auto session = std::make_shared<Session>(std::move(socket), *this);
        sessions_.emplace(session.get(), session);
        session->start();
      }
    } else {
      spdlog::warn("accept failed: {}", ec.message());
    }
    accept();
  });
}

}  // namespace tutti::core
