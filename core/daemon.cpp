#include "core/daemon.hpp"

#include <spdlog/spdlog.h>

#include "core/address.hpp"
#include "core/client.hpp"
#include "core/uuid.hpp"
#include "gcs/wire.hpp"

namespace tutti::core {
namespace {

// How long a node refused by a primary of another history waits for one of its own history.
constexpr gcs::Time kForeignGraceMs = 5000;

asio::ip::tcp::endpoint resolve(asio::io_context& io, const HostPort& hp) {
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(hp.host, std::to_string(hp.port));
  return results.begin()->endpoint();
}

gcs::Directory remembered_peers(const storage::Store& store) {
  auto raw = store.read()->meta_get(kMetaGcsPeers);
  if (!raw) return {};
  try {
    auto frame = gcs::decode_frame(*raw);
    if (auto* dir = std::get_if<gcs::Directory>(&frame)) return *dir;
  } catch (const gcs::WireError& e) {
    spdlog::warn("ignoring the remembered member addresses: {}", e.what());
  }
  return {};
}

}  // namespace

void check_identity(storage::Store& store, const NodeConfig& f) {
  auto txn = store.read();
  const auto meta = txn->meta();
  const auto name = txn->meta_get(kMetaClusterName);
  txn.reset();
  if (name && *name != f.cluster_name)
    throw std::runtime_error(
        fmt::format("data dir {} belongs to cluster '{}', not '{}' (--cluster-name)", f.data_dir,
                    *name, f.cluster_name));
  if (f.bootstrap && !meta.history_uuid.empty() && !f.force)
    throw std::runtime_error(fmt::format(
        "data dir {} already belongs to cluster history {} (last committed seqno {}): restart "
        "it without --bootstrap and it rejoins the members it remembers. Only if the rest of the "
        "cluster is lost for good, add --force to form a primary component of this node alone "
        "(commits that only other members hold would be lost)",
        f.data_dir, uuid_text(meta.history_uuid), meta.last_committed));
  if (!meta.node_uuid.empty()) {
    spdlog::info("data dir {}: node uuid {}, history {}, last committed seqno {}", f.data_dir,
                 uuid_text(meta.node_uuid),
                 meta.history_uuid.empty() ? "none yet" : uuid_text(meta.history_uuid),
                 meta.last_committed);
    return;
  }
  if (!f.bootstrap && f.peers.empty())
    throw std::runtime_error(fmt::format(
        "data dir {} belongs to no cluster yet: start with --bootstrap to form a new cluster, "
        "or with --peers HOST:PORT,... to join one",
        f.data_dir));
  const std::string node = random_uuid(store.env());
  store.write([&](storage::WriteTxn& t) {
    t.set_identity("", node);
    t.meta_put(kMetaClusterName, f.cluster_name);
  });
  spdlog::info("new data dir {}: node uuid {}", f.data_dir, uuid_text(node));
}

Recovery recover(const storage::Store& store) {
  const gcs::Durable d = load_durable(store);
  Recovery r;
  r.history_uuid = d.history.empty() ? "" : uuid_text(d.history);
  r.last_committed = store.read()->meta().last_committed;
  r.last_primary = d.last_primary;
  r.last_primary_committed =
      d.last_primary && d.last_committed && d.last_committed->id == d.last_primary->id;
  if (d.history.empty()) {
    r.why =
        "this data dir belongs to no history yet: start it with --bootstrap (a new cluster) "
        "or --peers (to join one)";
  } else if (!d.last_primary) {
    r.why = "this node never was in a primary component: it holds nothing to bootstrap from";
  } else if (d.needs_transfer) {
    r.why = "this node was catching up by state transfer: its state is behind its last view";
  } else {
    std::vector<gcs::NodeId> others;
    for (const auto& m : d.last_primary->members)
      if (m != store.read()->meta().node_uuid && !d.last_primary->learner(m)) others.push_back(m);
    r.safe_to_bootstrap = others.empty() && r.last_primary_committed;
    r.why = r.safe_to_bootstrap
                ? "this node was the only voting member of its last primary view: no other "
                  "member can hold a later commit"
                : fmt::format(
                      "{} other voting member(s) of its last primary view may hold later commits: "
                      "start every member with its usual command line and they re-form the primary "
                      "component by themselves, from the most advanced; bootstrap this one "
                      "(--bootstrap --force) only if the others are lost for good",
                      others.size());
  }
  return r;
}

// The members this data dir remembers, asked for their state: one that holds the history's
// primary or commits this node lacks must not be cut off by a bootstrap here.
void check_force_bootstrap(const storage::Store& store, const NodeConfig& f) {
  const auto meta = store.read()->meta();
  if (!f.bootstrap || !f.force || meta.history_uuid.empty()) return;
  const std::string history = uuid_text(meta.history_uuid);
  for (const auto& peer : remembered_peers(store)) {
    if (peer.uuid == meta.node_uuid || peer.client_addr.empty()) continue;
    StatusReply s;
    try {
      Client client(std::chrono::seconds(5));
      client.connect(parse_host_port(peer.client_addr));
      auto reply = client.call(Request{0, StatusRequest{}});
      auto* st = std::get_if<StatusReply>(&reply.body);
      if (!st) continue;
      s = *st;
    } catch (const ClientError& e) {
      if (e.kind() == ClientError::Kind::unreachable) continue;  // nothing there holds it up
      // Something answers there but not in time (a busy machine, a node starting): it may hold
      // commits this node lacks, so going ahead could lose them.
      throw std::runtime_error(fmt::format(
          "--bootstrap --force refused: member '{}' ({}) of this history could not be asked for "
          "its state ({}): it may hold commits this node lacks; try again, or stop it first",
          peer.name, peer.client_addr, e.what()));
    } catch (const std::exception&) {
      continue;  // an address that does not parse: nothing can be asked there
    }
    if (s.history_uuid != history) continue;
    if (s.primary)
      throw std::runtime_error(fmt::format(
          "--bootstrap --force refused: member '{}' ({}) of this history is running in a primary "
          "component (at seqno {}, this node at {}): start this node without --bootstrap and it "
          "rejoins it",
          s.name, peer.client_addr, s.last_committed, meta.last_committed));
    if (s.last_committed > meta.last_committed && !f.discard_newer_commits)
      throw std::runtime_error(fmt::format(
          "--bootstrap --force refused: member '{}' ({}) of this history holds commits up to "
          "seqno {}, this node only up to {}: bootstrapping here would lose {} commits. Start "
          "every member without --bootstrap and they re-form the primary by themselves; if you "
          "mean to lose those commits, add --discard-newer-commits",
          s.name, peer.client_addr, s.last_committed, meta.last_committed,
          s.last_committed - meta.last_committed));
  }
}

int Daemon::run() {
  const auto client_hp = parse_host_port(f_.client_addr);
  const auto meta = store_.read()->meta();
  gcs::TransportConfig tc;
  tc.cluster_name = f_.cluster_name;
  tc.self = gcs::PeerInfo{meta.node_uuid, f_.name, f_.gcs_addr, f_.client_addr, "JOINING", 0};
  if (!f_.peers.empty())
    for (const auto& p : parse_host_port_list(f_.peers)) tc.seeds.push_back(p.text());
  tc.known = remembered_peers(store_);
  tc.forget_after = std::chrono::seconds(f_.gcs_forget_after_s);
  tc.claim_ttl = std::min<std::chrono::milliseconds>(tc.claim_ttl, tc.forget_after);
  auto member = std::make_unique<gcs::Member>(meta.node_uuid, load_durable(store_), f_.gcs,
                                              std::vector<gcs::NodeId>{}, now());
  gcs::Member* m = member.get();
  transport_ = std::make_unique<gcs::Transport>(io_, tc, [m] { return m->durable().history; });
  group_ = std::make_unique<gcs::Group>(std::move(member), *transport_);
  // Batches go to disk on the storage thread; the loop goes on meanwhile. With memory
  // durability a commit never waits for the disk: the group's batches are written on the loop.
  persister_ = std::make_unique<ThreadPersister>(
      store_, meta.node_uuid, [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); },
      store_.options().durability == storage::Durability::memory);
  node_ = std::make_unique<Node>(
      f_.name, store_, *group_, f_.limits, [this] { asio::post(io_, [this] { node_->flush(); }); },
      [this] { return transport_->directory(); }, persister_.get());
  fetcher_ = std::make_unique<TransferFetcher>(
      [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); });
  // Joiners pull one request at a time each; more than 16 queued are refused (busy).
  donor_thread_ = std::make_unique<WorkerThread>(
      [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); }, 16, ThreadPriority::low,
      "donor thread");
  node_->set_donor_offload([this](std::function<void()> work, std::function<void()> done) {
    return donor_thread_->submit(std::move(work), std::move(done));
  });
  node_->set_transfer_link(
      [this](const gcs::NodeId& donor, Request request, TransferFetcher::Done done) {
        std::string address;
        for (const auto& p : transport_->directory())
          if (p.uuid == donor) address = p.client_addr;
        if (address.empty())  // not yet known here: the joiner asks again, or another
          return asio::post(io_, [done = std::move(done)] { done(std::nullopt); });
        fetcher_->fetch(address, std::move(request), std::move(done));
      },
      f_.donors);
  transport_->on_message = [this, m](gcs::Message msg) {
    m->receive(msg, now());
    node_->group_changed();
  };
  transport_->on_peer = [this, m](const gcs::NodeId& id) {
    m->meet(id);
    node_->group_changed();
  };
  transport_->on_directory_change = [this] { node_->directory_changed(); };
  transport_->on_foreign_primary = [this](const gcs::PeerInfo& p, const std::string& addr) {
    foreign_primary(p, addr);
  };
  if (f_.bootstrap) {
    if (!m->durable().history.empty())
      spdlog::warn(
          "--bootstrap --force on a data dir of history {}: this node forms a new primary "
          "component on its own, from its state at seqno {} (an operator decision)",
          uuid_text(m->durable().history), meta.last_committed);
    m->bootstrap(random_uuid(store_.env()));
    node_->group_changed();
  }
  auto server_limits = f_.server;
  server_limits.max_connections = connection_cap(server_limits.max_connections);
  server_ = std::make_unique<ClientServer>(io_, resolve(io_, client_hp), *node_, server_limits);
  transport_->start();
  spdlog::info(
      "serving clients on {}, group communication on {}{}; durability {}, last committed "
      "seqno {}",
      client_hp.text(), f_.gcs_addr, f_.peers.empty() ? "" : " (peers " + f_.peers + ")",
      f_.durability, meta.last_committed);
  tick();
  if (store_.options().durability == storage::Durability::memory) {
    sync_thread_ = std::make_unique<WorkerThread>(
        [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); }, 1,
        ThreadPriority::normal, "sync thread");
    background_sync();
  }
  signals_.async_wait([&](asio::error_code ec, int signo) {
    if (!ec) shut_down(signo);
  });
  io_.run();
  persister_.reset();  // the batch on its way to disk gets there
  store_.sync();
  spdlog::info("stopped cleanly at seqno {}", store_.read()->meta().last_committed);
  return 0;
}

void Daemon::tick() {
  group_->member().tick(now());
  transport_->set_progress(to_string(node_->state()), node_->last_committed(), group_->primary());
  node_->tick();
  node_->group_changed();
  if (const uint64_t stale = store_.stale_readers_cleared(); stale > stale_readers_told_) {
    spdlog::warn(
        "cleared {} read transaction(s) left open on this node's store by processes that died "
        "(a tool reading it, say): they kept LMDB from reusing freed pages",
        stale - stale_readers_told_);
    stale_readers_told_ = stale;
  }
  tick_timer_.expires_after(std::chrono::milliseconds(10));
  tick_timer_.async_wait([this](asio::error_code ec) {
    if (!ec && !stopping_) tick();
  });
}

// Memory durability: commits reach the page cache, and this flushes them every 100 ms, on a
// thread of its own: an fdatasync of 100 ms of commits on the loop held every answer, read and
// heartbeat behind it (p99 at 32 clients about 20 ms, docs/performance.md).
void Daemon::background_sync() {
  sync_timer_.expires_after(std::chrono::milliseconds(100));
  sync_timer_.async_wait([this](asio::error_code ec) {
    if (ec || stopping_) return;
    auto flush = [this] {
      try {
        store_.sync();
      } catch (const std::exception& e) {
        spdlog::error("background flush of memory durability failed: {}; tried again in 100 ms",
                      e.what());
      }
    };
    if (!sync_thread_->submit(std::move(flush), [this] {
          if (!stopping_) background_sync();
        }))
      background_sync();  // a flush still queued (not expected: one at a time): later, then
  });
}

// A primary component of this cluster name but of another history refused this node: its data
// dir is of a history the cluster left (bootstrapped anew, say). Alone and not primary for a
// while, with none of its own history in sight, the node joins that cluster as a new member;
// its caller keeps the old store aside, never deletes it.
void Daemon::foreign_primary(const gcs::PeerInfo& peer, const std::string& gcs_addr) {
  if (stopping_) return;
  if (group_->primary() || group_->view().members.size() > 1) {
    foreign_since_.reset();
    return;
  }
  const gcs::Time t = now();
  if (!foreign_since_) {
    foreign_since_ = t;
    spdlog::warn(
        "member '{}' at {} is in a primary component of this cluster but of another history: "
        "this node's data dir is of history {}. If no member of its own history shows up within "
        "{} ms, this node moves its store aside (kept, not deleted) and joins that cluster by "
        "state transfer",
        peer.name, gcs_addr, uuid_text(group_->member().durable().history), kForeignGraceMs);
    return;
  }
  if (t - *foreign_since_ < kForeignGraceMs) return;
  rejoin_ =
      Rejoin{gcs_addr, uuid_text(group_->member().durable().history), node_->last_committed()};
  spdlog::warn("joining the cluster of '{}' at {}: stopping to move this node's store aside",
               peer.name, gcs_addr);
  shut_down(0);
}

// A clean stop: finish what is queued, tell the group this member leaves (so the others go on
// at once rather than after suspecting it), give that a moment to go out, then close.
void Daemon::shut_down(int signo) {
  if (signo != 0)
    spdlog::info("signal {}: finishing queued commits, leaving the group and shutting down", signo);
  stopping_ = true;
  signals_.cancel();
  tick_timer_.cancel();
  sync_timer_.cancel();
  node_->flush();
  group_->member().leave();
  node_->flush();
  stop_timer_.expires_after(std::chrono::milliseconds(200));
  stop_timer_.async_wait([this](asio::error_code) {
    server_->stop();
    transport_->stop();
  });
}

}  // namespace tutti::core
