#include "core/server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <deque>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/codec.hpp"

namespace tutti::core {

using asio::ip::tcp;

using Clock = std::chrono::steady_clock;

namespace {
// Sessions told why they are closed and given a moment to read it; past this many, a session
// that is to close closes at once.
constexpr size_t kMaxClosing = 64;
// After an error frame, what the client still sends is read and dropped for this long (or this
// much), so that it reads the error instead of a reset connection.
constexpr auto kDiscardTime = std::chrono::seconds(2);
constexpr size_t kMaxDiscardBytes = 64u << 20;
}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ClientServer& owner)
      : socket_(std::move(socket)), owner_(owner), limits_(owner.limits_) {
    asio::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("unknown peer")
               : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    socket_.set_option(tcp::no_delay(true), ec);
    last_activity_ = Clock::now();
  }

  void start() { read_more(); }

  // A connection past the cap: told why, then closed.
  void refuse(const std::string& why) {
    quiet_ = true;
    fail(ErrorCode::busy, why);
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    set_buffered(0);
    if (discarding_) --owner_.closing_;
    asio::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    owner_.forget(this);  // may drop the last owner's reference; handlers hold their own
  }

  void reply(Response response) {
    if (in_flight_ > 0) --in_flight_;
    if (closed_) return;
    send(std::move(response));
    if (paused_ && in_flight_ <= limits_.max_in_flight_per_connection / 2) {
      paused_ = false;
      if (buffered_ > 0) partial_since_ = Clock::now();
      process_input();
    }
  }

  // Run by the server now and then: closes what waited too long.
  void check_timeouts(Clock::time_point now) {
    if (closed_) return;
    if (discarding_) {
      if (now > discard_until_) close();
      return;
    }
    if (!paused_ && partial_since_ && now - *partial_since_ > limits_.frame_timeout)
      return fail(ErrorCode::bad_request,
                  fmt::format("a frame stopped arriving half-way: {} bytes of it came, the rest "
                              "not within {} ms",
                              buffered_, limits_.frame_timeout.count()));
    if (in_flight_ == 0 && out_.empty() && !writing_ &&
        now - last_activity_ > limits_.idle_timeout) {
      spdlog::debug("client {}: idle for {} ms; closing the connection", peer_,
                    limits_.idle_timeout.count());
      quiet_ = true;  // an idle client did nothing wrong
      fail(ErrorCode::unavailable,
           fmt::format("the node closes connections idle for {} ms; connect again",
                       limits_.idle_timeout.count()));
    }
  }

 private:
  bool reading_allowed() const {
    return !closed_ && !close_after_write_ && (!paused_ || discarding_);
  }

  // Reads what the socket holds; every complete frame in it is handled before the next read, so
  // the requests a pipelining client sent together reach the same flush (one group commit).
  void read_more() {
    if (reading_ || !reading_allowed()) return;
    reading_ = true;
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](asio::error_code ec, size_t n) {
                              self->reading_ = false;
                              self->on_read(ec, n);
                            });
  }

  void on_read(asio::error_code ec, size_t n) {
    if (closed_) return;
    last_activity_ = Clock::now();
    if (ec == asio::error::eof) {
      // The client is done sending: answer what it asked, then close.
      close_after_write_ = true;
      return write_next();
    }
    if (ec) return close();
    if (discarding_) {
      discarded_ += n;
      if (discarded_ > kMaxDiscardBytes) return close();
      return read_more();
    }
    if (owner_.buffered_bytes_ + n > limits_.max_buffered_bytes)
      return fail(ErrorCode::busy,
                  fmt::format("the node holds {} bytes of partly received requests from all "
                              "clients (limit {}); try again",
                              owner_.buffered_bytes_, limits_.max_buffered_bytes));
    in_.append(chunk_.data(), n);
    process_input();
  }

  void process_input() {
    const size_t pos_before = in_pos_;
    while (reading_allowed() && !discarding_ && in_.size() - in_pos_ >= kFrameHeaderBytes) {
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
    if (closed_) return;
    if (discarding_) return read_more();
    const bool progressed = in_pos_ != pos_before;
    if (in_pos_ == in_.size() || in_pos_ > (1u << 20)) {
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    set_buffered(in_.size() - in_pos_, progressed);
    read_more();
  }

  // Counts this session's unhandled bytes in the server's total. The frame timer runs from the
  // last frame handled while part of another one is waiting.
  void set_buffered(size_t bytes, bool progressed = false) {
    owner_.buffered_bytes_ = owner_.buffered_bytes_ - buffered_ + bytes;
    if (bytes == 0) {
      partial_since_.reset();
    } else if (!partial_since_ || progressed) {
      partial_since_ = Clock::now();
    }
    buffered_ = bytes;
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
      if (auto self = weak.lock()) self->reply(std::move(r));
    });
    // The client must read its answers before it may send more.
    if (in_flight_ >= limits_.max_in_flight_per_connection) paused_ = true;
  }

  // A frame we cannot parse leaves the stream out of step: answer why, then close. What the
  // client still sends meanwhile is read and dropped, so it gets the answer, not a reset. A
  // closing session no longer counts against the connection cap.
  void fail(ErrorCode code, const std::string& why) {
    if (closed_ || discarding_) return;
    if (!quiet_) spdlog::warn("client {}: {}; closing the connection", peer_, why);
    if (owner_.closing_ >= kMaxClosing) return close();
    ++owner_.closing_;
    discarding_ = true;
    discard_until_ = Clock::now() + kDiscardTime;
    in_.clear();
    in_pos_ = 0;
    set_buffered(0);
    send(Response{0, ErrorReply{code, why}});
    read_more();
  }

  void send(Response response) {
    out_.push_back(encode_response_frame(std::move(response)));
    write_next();
  }

  void write_next() {
    if (writing_ || closed_) return;
    if (out_.empty()) {
      if (close_after_write_ && in_flight_ == 0) return close();
      if (discarding_ && in_flight_ == 0 && !send_shut_) {
        send_shut_ = true;  // the client reads the end after the error; its bytes still drain
        asio::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_send, ec);
      }
      return;
    }
    writing_ = true;
    // Everything queued goes out in one write: pipelined answers share a syscall. A lone frame
    // (a donor's chunk of megabytes, say) is not copied.
    if (out_.size() == 1) {
      writing_buf_ = std::move(out_.front());
    } else {
      writing_buf_.clear();
      for (auto& f : out_) writing_buf_ += f;
    }
    out_.clear();
    asio::async_write(socket_, asio::buffer(writing_buf_),
                      [self = shared_from_this()](asio::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) return self->close();
                        self->last_activity_ = Clock::now();
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
  size_t buffered_ = 0;  // in_.size() - in_pos_, as counted in the server's total
  std::optional<Clock::time_point> partial_since_;
  Clock::time_point last_activity_;
  bool reading_ = false;
  std::deque<std::string> out_;
  std::string writing_buf_;
  size_t in_flight_ = 0;
  bool writing_ = false;
  bool paused_ = false;
  bool closed_ = false;
  bool close_after_write_ = false;
  bool quiet_ = false;       // closing for a reason not worth a warning (the cap, idleness)
  bool discarding_ = false;  // answered an error: input is dropped until the client closes
  bool send_shut_ = false;
  Clock::time_point discard_until_;
  size_t discarded_ = 0;
};

size_t connection_cap(size_t wanted, size_t reserve) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return wanted;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  const uint64_t limit = lim.rlim_cur;
  if (limit <= reserve + 8)
    throw std::runtime_error(fmt::format(
        "the process may open only {} file descriptors: too few for a node ({} are kept for "
        "storage, group links and logs); raise it (ulimit -n)",
        limit, reserve));
  const size_t cap = std::min<uint64_t>(wanted, limit - reserve);
  spdlog::info(
      "client connections: at most {} (descriptor limit {}, {} kept for storage, group "
      "links and logs{})",
      cap, limit, reserve, cap < wanted ? fmt::format("; {} were asked for", wanted) : "");
  return cap;
}

ClientServer::ClientServer(asio::io_context& io, const tcp::endpoint& endpoint, Node& node,
                           ServerLimits limits)
    : acceptor_(io), accept_retry_(io), sweep_timer_(io), node_(node), limits_(limits) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  accept();
  sweep();
}

ClientServer::~ClientServer() {
  stop();
}

void ClientServer::stop() {
  stopped_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  sweep_timer_.cancel();
  auto sessions = std::move(sessions_);
  for (auto& [ptr, session] : sessions) session->close();
}

void ClientServer::accept() {
  acceptor_.async_accept([this](asio::error_code ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) return on_accept_error(ec);
    if (accept_failures_ > 0) {
      spdlog::info("accepting client connections again, after {} failed attempts",
                   accept_failures_);
      accept_failures_ = 0;
    }
    const size_t active = sessions_.size() - closing_;
    auto session = std::make_shared<Session>(std::move(socket), *this);
    sessions_.emplace(session.get(), session);
    if (active < limits_.max_connections) {
      refused_ = 0;
      session->start();
    } else {
      if (refused_++ == 0)
        spdlog::warn(
            "refusing client connections: {} are open, the limit; quietly until one "
            "is accepted again",
            active);
      session->refuse(
          fmt::format("busy: the node serves at most {} client connections at once; "
                      "try again or another node",
                      limits_.max_connections));
    }
    accept();
  });
}

// Out of descriptors (or memory), accepting again at once would spin: wait, say so once.
void ClientServer::on_accept_error(const asio::error_code& ec) {
  if (accept_failures_++ == 0)
    spdlog::error(
        "accepting a client connection failed: {} ({} connections open); retrying every 100 "
        "ms, quietly until it works again",
        ec.message(), sessions_.size());
  accept_retry_.expires_after(std::chrono::milliseconds(100));
  accept_retry_.async_wait([this](asio::error_code e) {
    if (!e && !stopped_) accept();
  });
}

void ClientServer::sweep() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Session>> sessions;
  sessions.reserve(sessions_.size());
  for (auto& [ptr, session] : sessions_) sessions.push_back(session);
  for (auto& session : sessions) session->check_timeouts(now);
  const auto period = std::clamp<std::chrono::milliseconds>(
      std::min(limits_.idle_timeout, limits_.frame_timeout) / 4, std::chrono::milliseconds(50),
      std::chrono::milliseconds(1000));
  sweep_timer_.expires_after(period);
  sweep_timer_.async_wait([this](asio::error_code ec) {
    if (!ec && !stopped_) sweep();
  });
}

}  // namespace tutti::core
