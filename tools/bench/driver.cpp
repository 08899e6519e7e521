#include "bench/driver.hpp"

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "core/codec.hpp"

namespace tutti::bench {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kAnswerTimeout = std::chrono::seconds(10);  // then the node counts as failed
constexpr auto kGiveUpAfter = std::chrono::seconds(10);    // an operation refused this long
constexpr auto kReconnectDelay = std::chrono::milliseconds(50);
constexpr auto kDrainLimit = std::chrono::seconds(10);
constexpr size_t kMaxFrameBytes = 64u << 20;

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

class Driver;

// One client: one connection, `pipeline` operation slots.
class BenchClient {
 public:
  BenchClient(Driver& d, size_t index);
  void start() { connect(); }
  bool idle() const;
  void check_timeouts(Clock::time_point now);
  // The drain ended: what is still in flight is cut off.
  void abandon();

 private:
  struct Slot {
    OpGenerator::Op op;
    bool active = false;
    bool committing = false;     // the step in flight is the commit
    bool maybe_applied = false;  // a commit of it was sent and its connection failed
    size_t awaiting = 0;
    std::vector<core::ValueReply> reads;
    Clock::time_point started, refused_since;
    bool refused = false;
  };
  struct Pending {
    size_t slot, index;
    core::Request request;
    Clock::time_point sent;
  };

  void connect();
  void begin(size_t slot);
  void send_step(size_t slot, std::vector<core::Request> requests);
  void send(size_t slot, size_t index, core::Request request);
  void write_out();
  void read_header();
  void on_response(core::Response r);
  void on_value(size_t slot, size_t index, core::ValueReply v);
  void on_commit(size_t slot, const core::CommitReply& c);
  void on_refused(size_t slot, const core::ErrorReply& e);
  void fail_connection(const std::string& why);
  void finish(size_t slot);
  void give_up(size_t slot, const std::string& why);

  Driver& d_;
  size_t index_, node_;
  tcp::socket socket_;
  asio::steady_timer reconnect_;
  uint64_t epoch_ = 0;  // callbacks of an older connection are ignored
  bool connected_ = false;
  OpGenerator gen_;
  std::vector<Slot> slots_;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
  std::string out_, writing_;
  std::array<char, core::kFrameHeaderBytes> header_{};
  std::string body_;
};

class Driver {
 public:
  explicit Driver(const DriverConfig& c);
  Totals run();

  const DriverConfig& config() const { return c_; }
  asio::io_context& io() { return io_; }
  const tcp::endpoint& endpoint(size_t node) const { return endpoints_[node]; }
  bool stopping() const { return stopping_; }
  bool measuring(Clock::time_point t) const { return t >= start_ && t < end_; }
  void completed(Clock::time_point started, Clock::time_point now);
  void counted(uint64_t Totals::*field, Clock::time_point now) {
    if (measuring(now)) ++(totals_.*field);
  }
  void unknown() { ++totals_.unknown; }
  void failover() { ++totals_.failovers; }
  void error(const std::string& why, Clock::time_point now);

 private:
  void tick();
  void progress(Clock::time_point now);
  void gap(Clock::time_point now) {
    totals_.longest_gap_s = std::max(totals_.longest_gap_s,
                                     std::chrono::duration<double>(now - last_completed_).count());
    last_completed_ = now;
  }

  DriverConfig c_;
  asio::io_context io_;
  asio::steady_timer timer_;
  std::vector<tcp::endpoint> endpoints_;
  std::vector<std::unique_ptr<BenchClient>> clients_;
  Clock::time_point begun_, start_, end_;
  bool stopping_ = false;
  Totals totals_;
  Histogram second_;
  uint64_t ops_at_last_line_ = 0;
  Clock::time_point last_line_;
  Clock::time_point last_completed_;  // or the window's start
};

// ---- BenchClient ----

BenchClient::BenchClient(Driver& d, size_t index)
    : d_(d),
      index_(index),
      node_(index % d.config().nodes.size()),
      socket_(d.io()),
      reconnect_(d.io()),
      gen_(d.config().workload, fmt::format("bench-{}-{}-", d.config().run_id, index),
           std::hash<std::string>{}(d.config().run_id) + index),
      slots_(static_cast<size_t>(d.config().pipeline)) {}

bool BenchClient::idle() const {
  for (const auto& s : slots_)
    if (s.active) return false;
  return true;
}

void BenchClient::connect() {
  const uint64_t epoch = ++epoch_;
  socket_ = tcp::socket(d_.io());
  socket_.async_connect(d_.endpoint(node_), [this, epoch](asio::error_code ec) {
    if (epoch != epoch_) return;
    if (ec) return fail_connection("cannot connect: " + ec.message());
    asio::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    connected_ = true;
    read_header();
    // What was in flight on the failed connection goes again, commits with their ids.
    std::map<uint64_t, Pending> again;
    again.swap(pending_);
    for (auto& [id, p] : again) send(p.slot, p.index, std::move(p.request));
    for (size_t s = 0; s < slots_.size(); ++s)
      if (!slots_[s].active) begin(s);
  });
}

void BenchClient::begin(size_t slot) {
  if (d_.stopping()) return;
  Slot& s = slots_[slot];
  s = Slot{};
  s.active = true;
  s.started = Clock::now();
  s.op = gen_.next();
  send_step(slot, gen_.first_step(s.op));
}

void BenchClient::send_step(size_t slot, std::vector<core::Request> requests) {
  Slot& s = slots_[slot];
  s.awaiting = requests.size();
  s.committing = std::holds_alternative<core::CommitRequest>(requests.front().body);
  s.reads.assign(requests.size(), core::ValueReply{});
  for (size_t i = 0; i < requests.size(); ++i) send(slot, i, std::move(requests[i]));
}

void BenchClient::send(size_t slot, size_t index, core::Request request) {
  request.id = next_id_++;
  if (connected_) out_ += core::frame(core::encode_request(request));
  pending_.emplace(request.id, Pending{slot, index, std::move(request), Clock::now()});
  write_out();
}

void BenchClient::write_out() {
  if (!connected_ || !writing_.empty() || out_.empty()) return;
  writing_.swap(out_);
  const uint64_t epoch = epoch_;
  asio::async_write(socket_, asio::buffer(writing_), [this, epoch](asio::error_code ec, size_t) {
    if (epoch != epoch_) return;
    writing_.clear();
    if (ec) return fail_connection("send failed: " + ec.message());
    write_out();
  });
}

void BenchClient::read_header() {
  const uint64_t epoch = epoch_;
  asio::async_read(socket_, asio::buffer(header_), [this, epoch](asio::error_code ec, size_t) {
    if (epoch != epoch_) return;
    if (ec) return fail_connection("connection lost: " + ec.message());
    const uint32_t length = core::frame_length(std::string_view(header_.data(), header_.size()));
    if (length > kMaxFrameBytes) return fail_connection("an answer frame over 64 MiB");
    body_.resize(length);
    asio::async_read(socket_, asio::buffer(body_), [this, epoch](asio::error_code ec2, size_t) {
      if (epoch != epoch_) return;
      if (ec2) return fail_connection("connection lost: " + ec2.message());
      core::Response r;
      try {
        r = core::decode_response(body_);
      } catch (const core::DecodeError& e) {
        return fail_connection(std::string("an answer that does not decode: ") + e.what());
      }
      read_header();
      on_response(std::move(r));
    });
  });
}

void BenchClient::on_response(core::Response r) {
  auto it = pending_.find(r.id);
  if (it == pending_.end()) {
    const auto* e = std::get_if<core::ErrorReply>(&r.body);
    return fail_connection(e ? "the node closes the connection: " + e->message
                             : "an answer to no request in flight");
  }
  const Pending p = std::move(it->second);
  pending_.erase(it);
  if (auto* v = std::get_if<core::ValueReply>(&r.body)) return on_value(p.slot, p.index, *v);
  if (auto* c = std::get_if<core::CommitReply>(&r.body)) return on_commit(p.slot, *c);
  if (auto* e = std::get_if<core::ErrorReply>(&r.body)) {
    if (e->code == core::ErrorCode::not_primary || e->code == core::ErrorCode::busy ||
        e->code == core::ErrorCode::unavailable) {
      // Sent again after the move to the next node, with the same id if a commit.
      pending_.emplace(p.request.id, p);
      return on_refused(p.slot, *e);
    }
    return give_up(p.slot, e->message);
  }
  give_up(p.slot, "an answer of the wrong kind");
}

void BenchClient::on_value(size_t slot, size_t index, core::ValueReply v) {
  Slot& s = slots_[slot];
  s.refused = false;
  s.reads[index] = std::move(v);
  if (--s.awaiting > 0) return;
  if (s.op.read_only) return finish(slot);
  auto commit = gen_.commit(s.op, s.reads);
  if (!commit) {  // a bank account without money: nothing to move, not an operation
    s.active = false;
    return begin(slot);
  }
  std::vector<core::Request> step;
  step.push_back(std::move(*commit));
  send_step(slot, std::move(step));
}

void BenchClient::on_commit(size_t slot, const core::CommitReply& c) {
  Slot& s = slots_[slot];
  s.refused = false;
  s.maybe_applied = false;
  const auto now = Clock::now();
  if (c.committed) {
    d_.counted(&Totals::committed, now);
    return finish(slot);
  }
  d_.counted(&Totals::conflicts, now);
  if (!s.op.transaction) return finish(slot);  // a blind write cannot conflict: never seen
  // The same transaction again, its reads taken anew, as sysbench retries Galera's.
  send_step(slot, gen_.first_step(s.op));
}

void BenchClient::on_refused(size_t slot, const core::ErrorReply& e) {
  Slot& s = slots_[slot];
  const auto now = Clock::now();
  if (!s.refused) {
    s.refused = true;
    s.refused_since = now;
  }
  if (now - s.refused_since > kGiveUpAfter) return give_up(slot, e.message);
  fail_connection("refused: " + e.message);
}

void BenchClient::fail_connection(const std::string& why) {
  if (!connected_ && reconnect_.expiry() > Clock::now()) return;  // a move is under way
  ++epoch_;
  connected_ = false;
  asio::error_code ignored;
  socket_.close(ignored);
  out_.clear();
  writing_.clear();
  for (auto& [id, p] : pending_)
    if (std::holds_alternative<core::CommitRequest>(p.request.body))
      slots_[p.slot].maybe_applied = true;
  if (d_.config().progress && d_.config().nodes.size() > 1)
    fmt::print(stderr, "client {}: {} ({}): moving to the next node\n", index_,
               d_.config().nodes[node_].text(), why);
  d_.failover();
  node_ = (node_ + 1) % d_.config().nodes.size();
  reconnect_.expires_after(kReconnectDelay);
  reconnect_.async_wait([this](asio::error_code ec) {
    if (!ec) connect();
  });
}

void BenchClient::finish(size_t slot) {
  Slot& s = slots_[slot];
  d_.completed(s.started, Clock::now());
  s.active = false;
  begin(slot);
}

void BenchClient::give_up(size_t slot, const std::string& why) {
  Slot& s = slots_[slot];
  if (s.maybe_applied) {
    d_.unknown();
  } else {
    d_.error(why, Clock::now());
  }
  for (auto it = pending_.begin(); it != pending_.end();)
    it = it->second.slot == slot ? pending_.erase(it) : std::next(it);
  s.active = false;
  begin(slot);
}

void BenchClient::check_timeouts(Clock::time_point now) {
  for (const auto& [id, p] : pending_)
    if (connected_ && now - p.sent > kAnswerTimeout)
      return fail_connection(fmt::format("no answer in {} s", kAnswerTimeout.count()));
}

void BenchClient::abandon() {
  for (auto& s : slots_)
    if (s.active && (s.committing || s.maybe_applied)) d_.unknown();
  ++epoch_;
  asio::error_code ignored;
  socket_.close(ignored);
  reconnect_.cancel();
}

// ---- Driver ----

Driver::Driver(const DriverConfig& c) : c_(c), timer_(io_) {
  tcp::resolver resolver(io_);
  for (const auto& n : c_.nodes) {
    auto found = resolver.resolve(n.host, std::to_string(n.port));
    endpoints_.push_back(found.begin()->endpoint());
  }
  for (int i = 0; i < c_.clients; ++i)
    clients_.push_back(std::make_unique<BenchClient>(*this, static_cast<size_t>(i)));
}

void Driver::completed(Clock::time_point started, Clock::time_point now) {
  if (!measuring(now)) return;
  gap(now);
  ++totals_.ops;
  totals_.latency.add(micros(now - started));
  second_.add(micros(now - started));
}

void Driver::error(const std::string& why, Clock::time_point now) {
  if (totals_.first_error.empty()) totals_.first_error = why;
  if (measuring(now) || now >= end_) ++totals_.errors;
}

Totals Driver::run() {
  begun_ = Clock::now();
  start_ = begun_ + c_.warmup;
  end_ = start_ + c_.duration;
  last_line_ = begun_;
  last_completed_ = start_;
  for (auto& cl : clients_) cl->start();
  tick();
  io_.run();
  gap(std::min(end_, Clock::now()));
  totals_.seconds = std::chrono::duration<double>(c_.duration).count();
  return totals_;
}

void Driver::tick() {
  const auto now = Clock::now();
  for (auto& cl : clients_) cl->check_timeouts(now);
  if (now - last_line_ >= std::chrono::seconds(1)) progress(now);
  if (now >= end_) stopping_ = true;
  bool idle = true;
  for (auto& cl : clients_) idle = idle && cl->idle();
  if (stopping_ && (idle || now >= end_ + kDrainLimit)) {
    for (auto& cl : clients_) cl->abandon();
    timer_.cancel();
    io_.stop();
    return;
  }
  timer_.expires_after(std::chrono::milliseconds(100));
  timer_.async_wait([this](asio::error_code ec) {
    if (!ec) tick();
  });
}

void Driver::progress(Clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - last_line_).count();
  last_line_ = now;
  if (!c_.progress || now > end_) return;
  const uint64_t ops = totals_.ops - ops_at_last_line_;
  ops_at_last_line_ = totals_.ops;
  const auto t = std::chrono::duration_cast<std::chrono::seconds>(now - begun_).count();
  if (now < start_) {
    fmt::print(stderr, "[{:4}s] warming up\n", t);
    return;
  }
  fmt::print(stderr,
             "[{:4}s] {:8.0f} ops/s  p99 {:7.2f} ms (so far {:7.2f})  conflicts {}  errors {}\n", t,
             static_cast<double>(ops) / elapsed, second_.quantile(0.99) / 1000.0,
             totals_.latency.quantile(0.99) / 1000.0, totals_.conflicts, totals_.errors);
  second_ = Histogram{};
}

}  // namespace

Totals run_load(const DriverConfig& config) {
  Driver d(config);
  return d.run();
}

}  // namespace tutti::bench
