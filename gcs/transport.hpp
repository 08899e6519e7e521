// The network under the group protocol: TCP links between members carrying framed Cap'n Proto
// frames (gcs/wire.hpp), on one Asio io_context, the node's thread.
//
// Every member dials every member it knows of and sends on the links it dialed (on the link a
// peer dialed to it only while its own is not up yet). Each link starts with Hello -> Welcome,
// which carries the cluster name, the history and the protocol version: a member of another cluster
// or version is refused, and both sides log why. A handshake has a deadline; a garbage or truncated
// frame closes its link. Dropped links are dialed again with backoff. What waits for one write goes
// out in the next (batching). A send to a member without a working link is dropped: the protocol
// resends what matters.
//
// What a peer claims is not believed until it is shown: a member's address enters the directory
// (which is gossiped and persisted) only once this node dialed it and was welcomed there by that
// member. Claimed addresses (from a Hello or from gossip) are dialed to check them, for a bounded
// time; a member unreachable for `forget_after` is dropped and no longer dialed. Connections not
// yet welcomed are capped, and failing accepts back off instead of spinning.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "gcs/group.hpp"
#include "gcs/wire.hpp"

namespace tutti::gcs {

struct TransportConfig {
  std::string cluster_name = "tutti";
  PeerInfo self;                   // uuid, name and addresses of this member
  std::vector<std::string> seeds;  // gcs addresses to dial first (--peers)
  Directory known;                 // members remembered from an earlier run
  size_t max_frame_bytes = 64u << 20;
  size_t max_queued_bytes = 128u << 20;  // per link: sends beyond this are dropped
  std::chrono::milliseconds handshake_timeout{3000};
  std::chrono::milliseconds max_backoff{2000};
  std::chrono::milliseconds gossip_interval{1000};
  std::chrono::milliseconds forget_after{24 * 3600 * 1000};  // unreachable this long: dropped
  std::chrono::milliseconds claim_ttl{30000};  // a claimed address not shown by then: dropped
  size_t max_unwelcomed_inbound = 64;
};

class Connection;

class Transport final : public Outbox {
 public:
  // history: the member's current cluster history (empty before it joins one).
  Transport(asio::io_context& io, TransportConfig config, std::function<std::string()> history);
  ~Transport() override;

  // Listens on self.gcs_addr and dials every known member. Throws asio::system_error.
  void start();
  void stop();

  void send(const NodeId& to, const Message& message) override;

  // A message from a member (its sender checked against the link's handshake).
  std::function<void(Message)> on_message;
  // A link to this member came up: the protocol may talk to it.
  std::function<void(const NodeId&)> on_peer;
  // The directory learnt a member or an address: worth persisting.
  std::function<void()> on_directory_change;
  // A member of this cluster but of another history, in a primary component, refused this node
  // (which dialed it at gcs_addr): the node's data may be of a cluster since bootstrapped anew.
  std::function<void(const PeerInfo& peer, const std::string& gcs_addr)> on_foreign_primary;

  // primary: this member is in a primary component now (told in its Welcomes).
  void set_progress(const std::string& state, uint64_t last_committed, bool primary);
  // Every member known, this one first.
  Directory directory() const;
  const PeerInfo* find(const NodeId& uuid) const;
  uint16_t local_port() const;

 private:
  friend class Connection;
  struct Dial {
    std::shared_ptr<Connection> conn;
    NodeId uuid;  // known once welcomed
    bool up = false;
    bool self = false;  // the address is this member's own
    std::chrono::milliseconds backoff{0};
    std::unique_ptr<asio::steady_timer> retry;
    bool retry_pending = false;
    std::string last_refusal;
  };

  using Clock = std::chrono::steady_clock;
  struct Claim {  // a member's address as told, not yet shown
    PeerInfo peer;
    Clock::time_point since;
  };

  void accept();
  void on_accept_error(const asio::error_code& ec);
  void expire();
  void drop_dial(const std::string& addr);
  bool addr_in_use(const std::string& addr) const;
  void dial(const std::string& addr);
  void redial_later(const std::string& addr);
  void on_frame(Connection& c, Frame frame);
  void on_hello(Connection& c, Hello& hello);
  void on_welcome(Connection& c, Welcome& welcome);
  void on_closed(Connection& c, const std::string& reason);
  std::string refusal(uint16_t version, const std::string& cluster, const std::string& history,
                      const PeerInfo& peer) const;
  // shown: this node dialed the peer's address and was welcomed there by it.
  void learn(const PeerInfo& peer, bool shown);
  void gossip();

  bool primary_ = false;
  asio::io_context& io_;
  TransportConfig cfg_;
  std::function<std::string()> history_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer gossip_timer_, accept_retry_;
  uint64_t accept_failures_ = 0;
  uint64_t inbound_refused_ = 0;
  bool stopped_ = false;
  std::map<std::string, Dial> dials_;  // by gcs address
  std::set<std::shared_ptr<Connection>> inbound_;
  std::map<NodeId, PeerInfo> directory_;         // members shown
  std::map<NodeId, Clock::time_point> last_up_;  // when a link with each was last up
  std::map<NodeId, Claim> claims_;
  std::map<NodeId, std::string> route_;  // member -> the address of its dialed link
};

}  // namespace tutti::gcs
