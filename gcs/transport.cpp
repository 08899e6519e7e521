#include "gcs/transport.hpp"

#include "gcs/address.hpp"
#include "gcs/framing.hpp"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace tutti::gcs {
namespace {

constexpr size_t kReadChunk = 64u << 10;

std::string framed(const Frame& f) {
  return frame(encode_frame(f));
}

std::string hex8(const std::string& uuid) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < uuid.size() && i < 4; ++i) {
    out += digits[static_cast<unsigned char>(uuid[i]) >> 4];
    out += digits[static_cast<unsigned char>(uuid[i]) & 15];
  }
  return out;
}

asio::ip::tcp::endpoint resolve(asio::io_context& io, const std::string& addr) {
  const HostPort hp = parse_host_port(addr);
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(hp.host, std::to_string(hp.port));
  if (results.empty()) throw std::invalid_argument("address " + addr + " does not resolve");
  return results.begin()->endpoint();
}

}  // namespace

// One TCP link: the frame reader, the batching writer and the handshake deadline.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class Kind { inbound, outbound };
  Connection(Transport& t, asio::ip::tcp::socket socket, Kind kind, std::string label)
      : t_(&t), socket_(std::move(socket)), deadline_(t.io_), kind_(kind), label_(label) {}

  Kind kind() const { return kind_; }
  const std::string& label() const { return label_; }
  NodeId peer;
  bool welcomed = false;
  asio::ip::tcp::socket& socket() { return socket_; }

  void start() {
    asio::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    arm_deadline();
    read();
  }
  void arm_deadline() {
    deadline_.expires_after(t_->cfg_.handshake_timeout);
    deadline_.async_wait([self = shared_from_this()](asio::error_code ec) {
      if (!ec && !self->welcomed) self->close("no handshake within the deadline");
    });
  }
  void handshake_done() {
    welcomed = true;
    deadline_.cancel();
  }

  // false: the link's queue is full, the bytes were dropped.
  bool send(std::string bytes) {
    if (closed_) return false;
    if (pending_.size() + bytes.size() > t_->cfg_.max_queued_bytes) return false;
    pending_ += bytes;
    if (!writing_) write();
    return true;
  }
  void close_after_write() {
    close_when_drained_ = true;
    if (!writing_) close("handshake refused");
  }

  void close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    socket_.close(ec);
    deadline_.cancel();
    if (t_) t_->on_closed(*this, reason);
  }
  void detach() {
    t_ = nullptr;
    close("transport stopped");
  }

 private:
  void write() {
    writing_ = true;
    out_ = std::move(pending_);
    pending_.clear();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](asio::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) return self->close(ec.message());
                        if (!self->pending_.empty()) return self->write();
                        if (self->close_when_drained_) self->close("handshake refused");
                      });
  }

  void read() {
    chunk_.resize(kReadChunk);
    socket_.async_read_some(
        asio::buffer(chunk_), [self = shared_from_this()](asio::error_code ec, size_t n) {
          if (ec) {
            return self->close(ec == asio::error::eof ? std::string("closed by the peer")
                                                      : ec.message());
          }
          self->in_.append(self->chunk_.data(), n);
          self->parse();
          if (!self->closed_) self->read();
        });
  }

  void parse() {
    size_t at = 0;
    while (!closed_ && in_.size() - at >= kFrameHeaderBytes) {
      const uint32_t len = frame_length(std::string_view(in_).substr(at));
      if (len == 0 || len > t_->cfg_.max_frame_bytes)
        return close(fmt::format("frame of {} bytes (limit {})", len, t_->cfg_.max_frame_bytes));
      if (in_.size() - at < kFrameHeaderBytes + len) break;
      Frame frame;
      try {
        frame = decode_frame(std::string_view(in_).substr(at + kFrameHeaderBytes, len));
      } catch (const WireError& e) {
        return close(e.what());
      }
      at += kFrameHeaderBytes + len;
      if (t_) t_->on_frame(*this, std::move(frame));
    }
    in_.erase(0, at);
  }

  Transport* t_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer deadline_;
  Kind kind_;
  std::string label_;
  std::string in_, chunk_, pending_, out_;
  bool writing_ = false, closed_ = false, close_when_drained_ = false;
};

Transport::Transport(asio::io_context& io, TransportConfig config,
                     std::function<std::string()> history)
    : io_(io),
      cfg_(std::move(config)),
      history_(std::move(history)),
      acceptor_(io),
      gossip_timer_(io),
      accept_retry_(io) {
  // Remembered members were shown in an earlier run; the clock for forgetting them starts now.
  for (const auto& p : cfg_.known)
    if (p.uuid != cfg_.self.uuid && p.uuid.size() == 16) {
      directory_[p.uuid] = p;
      last_up_[p.uuid] = Clock::now();
    }
}

Transport::~Transport() {
  stop();
}

void Transport::start() {
  const auto endpoint = resolve(io_, cfg_.self.gcs_addr);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  accept();
  for (const auto& s : cfg_.seeds) dial(s);
  for (const auto& [uuid, p] : directory_) dial(p.gcs_addr);
  gossip();
}

void Transport::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
  gossip_timer_.cancel();
  accept_retry_.cancel();
  auto inbound = std::move(inbound_);
  for (auto& c : inbound) c->detach();
  for (auto& [addr, d] : dials_) {
    if (d.retry) d.retry->cancel();
    if (d.conn) d.conn->detach();
  }
  dials_.clear();
}

uint16_t Transport::local_port() const {
  return acceptor_.local_endpoint().port();
}

void Transport::accept() {
  acceptor_.async_accept([this](asio::error_code ec, asio::ip::tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) return on_accept_error(ec);
    if (accept_failures_ > 0) {
      spdlog::info("gcs: accepting connections again, after {} failed attempts", accept_failures_);
      accept_failures_ = 0;
    }
    size_t unwelcomed = 0;
    for (const auto& c : inbound_) unwelcomed += c->welcomed ? 0 : 1;
    asio::error_code e2;
    auto remote = socket.remote_endpoint(e2);
    const std::string label =
        e2 ? std::string("?") : remote.address().to_string() + ":" + std::to_string(remote.port());
    if (unwelcomed >= cfg_.max_unwelcomed_inbound) {
      if (inbound_refused_++ == 0)
        spdlog::warn(
            "gcs: {} connections are waiting for their handshake, the limit: closing "
            "new ones (from {} first) until one completes",
            unwelcomed, label);
      socket.close(e2);
      return accept();
    }
    inbound_refused_ = 0;
    auto c =
        std::make_shared<Connection>(*this, std::move(socket), Connection::Kind::inbound, label);
    inbound_.insert(c);
    c->start();
    accept();
  });
}

// Out of descriptors (or memory), accepting again at once would spin: wait, say so once.
void Transport::on_accept_error(const asio::error_code& ec) {
  if (accept_failures_++ == 0)
    spdlog::error(
        "gcs: accepting a connection failed: {}; retrying every 100 ms, quietly until "
        "it works again",
        ec.message());
  accept_retry_.expires_after(std::chrono::milliseconds(100));
  accept_retry_.async_wait([this](asio::error_code e) {
    if (!e && !stopped_) accept();
  });
}

void Transport::dial(const std::string& addr) {
  if (stopped_ || addr.empty() || addr == cfg_.self.gcs_addr) return;
  auto [it, fresh] = dials_.try_emplace(addr);
  Dial& d = it->second;
  if (!fresh && (d.conn || d.self || d.retry_pending)) return;
  asio::ip::tcp::endpoint endpoint;
  try {
    endpoint = resolve(io_, addr);
  } catch (const std::exception& e) {
    spdlog::warn("gcs: cannot dial {}: {}", addr, e.what());
    return redial_later(addr);
  }
  auto c = std::make_shared<Connection>(*this, asio::ip::tcp::socket(io_),
                                        Connection::Kind::outbound, addr);
  d.conn = c;
  c->arm_deadline();
  c->socket().async_connect(endpoint, [this, c](asio::error_code ec) {
    if (stopped_) return;
    if (ec) return c->close(ec.message());
    c->start();
    Hello hello{kGcsProtocolVersion, cfg_.cluster_name, history_(), cfg_.self};
    c->send(framed(hello));
  });
}

void Transport::redial_later(const std::string& addr) {
  auto it = dials_.find(addr);
  if (stopped_ || it == dials_.end() || it->second.self) return;
  Dial& d = it->second;
  d.backoff = std::min(cfg_.max_backoff, std::max(std::chrono::milliseconds(100), d.backoff * 2));
  if (!d.retry) d.retry = std::make_unique<asio::steady_timer>(io_);
  d.retry_pending = true;
  d.retry->expires_after(d.backoff);
  d.retry->async_wait([this, addr](asio::error_code ec) {
    if (ec || stopped_) return;
    auto it = dials_.find(addr);
    if (it == dials_.end()) return;
    it->second.retry_pending = false;
    dial(addr);
  });
}

std::string Transport::refusal(uint16_t version, const std::string& cluster,
                               const std::string& history, const PeerInfo& peer) const {
  if (version != kGcsProtocolVersion)
    return fmt::format("it speaks gcs protocol version {}, this node speaks {}", version,
                       kGcsProtocolVersion);
  if (cluster != cfg_.cluster_name)
    return fmt::format("it belongs to cluster '{}', this node to cluster '{}'", cluster,
                       cfg_.cluster_name);
  if (peer.uuid.size() != 16) return "its node uuid is malformed";
  const std::string mine = history_();
  if (!history.empty() && !mine.empty() && history != mine)
    return fmt::format(
        "it belongs to another cluster history ({}..., this node's is {}...): a data dir of "
        "another cluster",
        hex8(history), hex8(mine));
  return "";
}

void Transport::on_frame(Connection& c, Frame frame) {
  if (auto* hello = std::get_if<Hello>(&frame)) {
    if (c.kind() == Connection::Kind::inbound && !c.welcomed) return on_hello(c, *hello);
  } else if (auto* welcome = std::get_if<Welcome>(&frame)) {
    if (c.kind() == Connection::Kind::outbound && !c.welcomed) return on_welcome(c, *welcome);
  } else if (c.welcomed) {
    if (auto* dir = std::get_if<Directory>(&frame)) {
      // The sender's own entry updates what it says of itself once it is shown; the rest are
      // claims until this node is welcomed at their addresses.
      for (size_t i = 0; i < dir->size(); ++i) {
        const PeerInfo& p = (*dir)[i];
        if (i == 0 && p.uuid == c.peer && directory_.count(p.uuid) &&
            directory_[p.uuid].gcs_addr == p.gcs_addr) {
          learn(p, true);
        } else {
          learn(p, false);
        }
      }
      return;
    }
    auto& m = std::get<Message>(frame);
    if (m.from != c.peer) return c.close("a message signed by another member");
    if (on_message) on_message(std::move(m));
    return;
  }
  c.close("unexpected frame for the link's state");
}

void Transport::on_hello(Connection& c, Hello& hello) {
  std::string why =
      hello.self.uuid == cfg_.self.uuid
          ? std::string("it is this node itself")
          : refusal(hello.protocol_version, hello.cluster_name, hello.history, hello.self);
  Welcome w{kGcsProtocolVersion, why.empty(),       why,     cfg_.self,
            history_(),          cfg_.cluster_name, primary_};
  c.send(framed(w));
  if (!why.empty()) {
    if (hello.self.uuid != cfg_.self.uuid)
      spdlog::error("gcs: refused a link from {} ('{}' at {}): {}", c.label(), hello.self.name,
                    hello.self.gcs_addr, why);
    return c.close_after_write();
  }
  c.peer = hello.self.uuid;
  c.handshake_done();
  last_up_[c.peer] = Clock::now();
  learn(hello.self, false);  // a claim: shown only once this node dials it and is welcomed
  if (on_peer) on_peer(c.peer);
}

void Transport::on_welcome(Connection& c, Welcome& w) {
  auto it = dials_.find(c.label());
  if (it == dials_.end() || it->second.conn.get() != &c) return c.close("stale link");
  Dial& d = it->second;
  if (w.self.uuid == cfg_.self.uuid) {
    d.self = true;  // a --peers entry naming this very node
    return c.close("this node's own address");
  }
  std::string why = w.accepted ? refusal(w.protocol_version, cfg_.cluster_name, w.history, w.self)
                               : "it refused this node: " + w.reason;
  if (!why.empty()) {
    if (why != d.last_refusal)
      spdlog::error("gcs: no link to {} ('{}'): {}", c.label(), w.self.name, why);
    d.last_refusal = why;
    d.backoff = cfg_.max_backoff;
    const std::string mine = history_();
    if (!w.accepted && w.primary && w.protocol_version == kGcsProtocolVersion &&
        w.cluster_name == cfg_.cluster_name && !w.history.empty() && !mine.empty() &&
        w.history != mine && on_foreign_primary)
      on_foreign_primary(w.self, it->first);
    return c.close("refused");
  }
  d.last_refusal.clear();
  d.uuid = w.self.uuid;
  d.up = true;
  d.backoff = std::chrono::milliseconds(0);
  c.peer = w.self.uuid;
  c.handshake_done();
  route_[d.uuid] = c.label();
  last_up_[d.uuid] = Clock::now();
  spdlog::info("gcs: link to '{}' ({}) is up", w.self.name, c.label());
  learn(w.self, true);
  Directory dir = directory();
  c.send(framed(dir));
  if (on_peer) on_peer(d.uuid);
}

void Transport::on_closed(Connection& c, const std::string& reason) {
  if (c.kind() == Connection::Kind::inbound) {
    for (auto it = inbound_.begin(); it != inbound_.end(); ++it)
      if (it->get() == &c) {
        if (c.welcomed)
          spdlog::debug("gcs: link from {} closed: {}", c.label(), reason);
        else if (reason != "handshake refused")
          spdlog::warn("gcs: dropped a connection from {} before its handshake: {}", c.label(),
                       reason);
        inbound_.erase(it);
        return;
      }
    return;
  }
  auto it = dials_.find(c.label());
  if (it == dials_.end() || it->second.conn.get() != &c) return;
  Dial& d = it->second;
  if (d.up) {
    const PeerInfo* p = find(d.uuid);
    spdlog::warn("gcs: link to '{}' ({}) lost: {}", p ? p->name : hex8(d.uuid), c.label(), reason);
    auto r = route_.find(d.uuid);
    if (r != route_.end() && r->second == c.label()) route_.erase(r);
  } else {
    spdlog::debug("gcs: dial {} failed: {}", c.label(), reason);
  }
  d.up = false;
  d.conn.reset();
  redial_later(c.label());
}

void Transport::learn(const PeerInfo& peer, bool shown) {
  if (peer.uuid == cfg_.self.uuid || peer.uuid.size() != 16) return;
  auto known = directory_.find(peer.uuid);
  if (!shown) {
    // A member already shown keeps its address; a claim is only dialed, to be checked.
    if (known == directory_.end() && !peer.gcs_addr.empty()) {
      claims_.try_emplace(peer.uuid, Claim{peer, Clock::now()});
      dial(peer.gcs_addr);
    }
    return;
  }
  claims_.erase(peer.uuid);
  bool changed = known == directory_.end();
  if (!changed)
    changed = known->second.gcs_addr != peer.gcs_addr ||
              known->second.client_addr != peer.client_addr || known->second.name != peer.name;
  directory_[peer.uuid] = peer;
  last_up_[peer.uuid] = Clock::now();
  if (!peer.gcs_addr.empty()) dial(peer.gcs_addr);
  if (changed && on_directory_change) on_directory_change();
}

bool Transport::addr_in_use(const std::string& addr) const {
  if (std::find(cfg_.seeds.begin(), cfg_.seeds.end(), addr) != cfg_.seeds.end()) return true;
  for (const auto& [uuid, p] : directory_)
    if (p.gcs_addr == addr) return true;
  for (const auto& [uuid, c] : claims_)
    if (c.peer.gcs_addr == addr) return true;
  return false;
}

void Transport::drop_dial(const std::string& addr) {
  if (addr_in_use(addr)) return;
  auto it = dials_.find(addr);
  if (it == dials_.end()) return;
  if (it->second.retry) it->second.retry->cancel();
  auto conn = std::move(it->second.conn);
  dials_.erase(it);
  if (conn) conn->close("no longer dialed");
}

// Claims not shown in time, and members unreachable for forget_after, are no longer dialed.
void Transport::expire() {
  const auto now = Clock::now();
  std::vector<std::string> drop;
  for (auto it = claims_.begin(); it != claims_.end();) {
    if (now - it->second.since < cfg_.claim_ttl) {
      ++it;
      continue;
    }
    spdlog::info(
        "gcs: no longer dialing {} (claimed by '{}' {}): nobody answered there as that "
        "member within {} ms",
        it->second.peer.gcs_addr, it->second.peer.name, hex8(it->first), cfg_.claim_ttl.count());
    drop.push_back(it->second.peer.gcs_addr);
    it = claims_.erase(it);
  }
  bool changed = false;
  for (auto it = directory_.begin(); it != directory_.end();) {
    bool up = route_.count(it->first) > 0;
    for (const auto& c : inbound_) up = up || (c->welcomed && c->peer == it->first);
    if (up) last_up_[it->first] = now;
    if (up || now - last_up_[it->first] < cfg_.forget_after) {
      ++it;
      continue;
    }
    spdlog::warn(
        "gcs: forgetting member '{}' ({}): unreachable for {} s; it is dialed again "
        "once it comes back and dials this node",
        it->second.name, it->second.gcs_addr, cfg_.forget_after.count() / 1000);
    drop.push_back(it->second.gcs_addr);
    last_up_.erase(it->first);
    it = directory_.erase(it);
    changed = true;
  }
  for (const auto& addr : drop) drop_dial(addr);
  if (changed && on_directory_change) on_directory_change();
}

void Transport::gossip() {
  if (stopped_) return;
  expire();
  const std::string bytes = framed(directory());
  for (auto& [addr, d] : dials_)
    if (d.up && d.conn) d.conn->send(bytes);
  gossip_timer_.expires_after(cfg_.gossip_interval);
  gossip_timer_.async_wait([this](asio::error_code ec) {
    if (!ec) gossip();
  });
}

// On the link this member dialed to the peer; until that one is up, back on the link the peer
// dialed here, so that the first answers of a handshake (a view change under way, say) are not
// lost while the other direction connects.
void Transport::send(const NodeId& to, const Message& message) {
  Connection* link = nullptr;
  if (auto r = route_.find(to); r != route_.end()) {
    auto d = dials_.find(r->second);
    if (d != dials_.end() && d->second.up && d->second.conn) link = d->second.conn.get();
  }
  if (!link)
    for (const auto& c : inbound_)
      if (c->welcomed && c->peer == to) link = c.get();
  if (link && !link->send(framed(message)))
    spdlog::warn("gcs: the link to {} has {} bytes queued: a message was dropped", link->label(),
                 cfg_.max_queued_bytes);
}

void Transport::set_progress(const std::string& state, uint64_t last_committed, bool primary) {
  primary_ = primary;
  const bool changed = state != cfg_.self.state;
  cfg_.self.state = state;
  cfg_.self.last_committed = last_committed;
  if (!changed || stopped_) return;
  const std::string bytes = framed(directory());  // a state change is news: tell it at once
  for (auto& [addr, d] : dials_)
    if (d.up && d.conn) d.conn->send(bytes);
}

Directory Transport::directory() const {
  Directory out{cfg_.self};
  for (const auto& [uuid, p] : directory_) out.push_back(p);
  return out;
}

const PeerInfo* Transport::find(const NodeId& uuid) const {
  if (uuid == cfg_.self.uuid) return &cfg_.self;
  auto it = directory_.find(uuid);
  return it == directory_.end() ? nullptr : &it->second;
}

}  // namespace tutti::gcs
