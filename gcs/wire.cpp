#include "gcs/wire.hpp"

#include <fmt/format.h>

#include "gcs/capnp_bytes.hpp"
#include "gcs/protocol/gcs.capnp.h"

namespace tutti::gcs {
namespace {

using capnp_bytes::as_data;
using capnp_bytes::as_text;
using capnp_bytes::first_segment_words;
using capnp_bytes::str;
using capnp_bytes::to_bytes;

template <typename Root, typename Fn>
auto with_reader(std::string_view bytes, std::string_view what, Fn&& fn) {
  return capnp_bytes::with_reader<WireError, Root>(bytes, what, std::forward<Fn>(fn));
}

size_t payload_bytes(const Message& m) {
  size_t n = 0;
  if (auto* d = std::get_if<Data>(&m.body))
    for (const auto& i : d->items) n += i.payload.size() + 16;
  if (auto* o = std::get_if<Order>(&m.body))
    for (const auto& i : o->items) n += i.payload.size() + i.sender.size() + 32;
  return n;
}

// ---- builders ----

void set_key(wire::ViewKey::Builder out, const ViewKey& k) {
  out.setEpoch(k.epoch);
  out.setCoordinator(as_data(k.coordinator));
}

void set_ids(capnp::List<capnp::Data>::Builder out, const std::vector<NodeId>& ids) {
  for (size_t i = 0; i < ids.size(); ++i) out.set(i, as_data(ids[i]));
}

void set_view(wire::ViewInfo::Builder out, const ViewInfo& v) {
  set_key(out.initId(), v.id);
  set_ids(out.initMembers(v.members.size()), v.members);
  out.setPrimary(v.primary);
  out.setBase(v.base);
  set_ids(out.initLearners(v.learners.size()), v.learners);
}

void set_seqs(capnp::List<wire::Seq>::Builder out, const std::map<NodeId, uint64_t>& m) {
  size_t i = 0;
  for (const auto& [node, seq] : m) {
    out[i].setNode(as_data(node));
    out[i].setSeq(seq);
    ++i;
  }
}

void set_keys(capnp::List<wire::ViewKey>::Builder out, const std::vector<ViewKey>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) set_key(out[i], keys[i]);
}

void set_peer(wire::Peer::Builder out, const PeerInfo& p) {
  out.setUuid(as_data(p.uuid));
  out.setName(as_text(p.name));
  out.setGcsAddr(as_text(p.gcs_addr));
  out.setClientAddr(as_text(p.client_addr));
  out.setState(as_text(p.state));
  out.setLastCommitted(p.last_committed);
}

void set_state(wire::StateReport::Builder out, const StateReport& r) {
  set_view(out.initCurrent(), r.current);
  if (r.last_primary) set_view(out.initLastPrimary(), *r.last_primary);
  if (r.last_committed) set_view(out.initLastCommitted(), *r.last_committed);
  if (r.previous_primary) set_view(out.initPreviousPrimary(), *r.previous_primary);
  set_keys(out.initInstalls(r.installs.size()), r.installs);
  out.setLineageHeld(r.lineage_held);
  out.setDelivered(r.delivered);
  out.setNeedsTransfer(r.needs_transfer);
  out.setRestarted(r.restarted);
}

void set_install(wire::Install::Builder out, const Install& inst) {
  set_view(out.initView(), inst.view);
  set_ids(out.initJoiners(inst.joiners.size()), inst.joiners);
  if (inst.predecessor) set_key(out.initPredecessor(), *inst.predecessor);
  if (inst.predecessor_view) set_view(out.initPredecessorView(), *inst.predecessor_view);
  set_seqs(out.initDelivered(inst.delivered.size()), inst.delivered);
}

void set_heartbeat(wire::Message::Heartbeat::Builder out, const Heartbeat& h) {
  out.setHeld(h.held);
  out.setLeaving(h.leaving);
  set_ids(out.initKnown(h.known.size()), h.known);
  set_key(out.initPromised(), h.promised);
  out.setIdle(h.idle);
  out.setInstalled(h.installed);
  out.setFlowPause(h.flow_pause);
  out.setNeedsTransfer(h.needs_transfer);
  out.setApplying(h.applying);
}

void set_message(wire::Message::Builder out, const Message& m) {
  out.setVersion(m.version);
  out.setFrom(as_data(m.from));
  out.setHistory(as_data(m.history));
  set_key(out.initView(), m.view);
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, Heartbeat>) set_heartbeat(out.initHeartbeat(), body);
        if constexpr (std::is_same_v<T, Data>) {
          auto d = out.initData();
          d.setLowest(body.lowest);
          auto items = d.initItems(body.items.size());
          for (size_t i = 0; i < body.items.size(); ++i) {
            items[i].setSeq(body.items[i].seq);
            items[i].setPayload(as_data(body.items[i].payload));
          }
        }
        if constexpr (std::is_same_v<T, Order>) {
          auto items = out.initOrder(body.items.size());
          for (size_t i = 0; i < body.items.size(); ++i) {
            const OrderItem& it = body.items[i];
            items[i].setPos(it.pos);
            items[i].setSender(as_data(it.sender));
            items[i].setSenderSeq(it.sender_seq);
            items[i].setPayload(as_data(it.payload));
          }
        }
        if constexpr (std::is_same_v<T, Ack>) out.setAck(body.held);
        if constexpr (std::is_same_v<T, Propose>)
          set_ids(out.initPropose(body.members.size()), body.members);
        if constexpr (std::is_same_v<T, StateReport>) set_state(out.initState(), body);
        if constexpr (std::is_same_v<T, Install>) set_install(out.initInstall(), body);
        if constexpr (std::is_same_v<T, Installed>) out.setInstalled();
        if constexpr (std::is_same_v<T, Commit>) out.setCommit();
        if constexpr (std::is_same_v<T, Alive>) out.initAlive().setFlowPause(body.flow_pause);
      },
      m.body);
}

// ---- readers ----

ViewKey key(wire::ViewKey::Reader r) {
  return ViewKey{r.getEpoch(), str(r.getCoordinator())};
}

std::vector<NodeId> ids(capnp::List<capnp::Data>::Reader r) {
  std::vector<NodeId> out;
  out.reserve(r.size());
  for (auto d : r) out.push_back(str(d));
  return out;
}

ViewInfo view(wire::ViewInfo::Reader r) {
  return ViewInfo{key(r.getId()), ids(r.getMembers()), r.getPrimary(), r.getBase(),
                  ids(r.getLearners())};
}

std::map<NodeId, uint64_t> seqs(capnp::List<wire::Seq>::Reader r) {
  std::map<NodeId, uint64_t> out;
  for (auto s : r) out[str(s.getNode())] = s.getSeq();
  return out;
}

std::vector<ViewKey> keys(capnp::List<wire::ViewKey>::Reader r) {
  std::vector<ViewKey> out;
  for (auto k : r) out.push_back(key(k));
  return out;
}

PeerInfo peer(wire::Peer::Reader r) {
  return PeerInfo{str(r.getUuid()),       str(r.getName()),  str(r.getGcsAddr()),
                  str(r.getClientAddr()), str(r.getState()), r.getLastCommitted()};
}

StateReport state(wire::StateReport::Reader r) {
  StateReport out;
  out.current = view(r.getCurrent());
  if (r.hasLastPrimary()) out.last_primary = view(r.getLastPrimary());
  if (r.hasLastCommitted()) out.last_committed = view(r.getLastCommitted());
  if (r.hasPreviousPrimary()) out.previous_primary = view(r.getPreviousPrimary());
  out.installs = keys(r.getInstalls());
  out.lineage_held = r.getLineageHeld();
  out.delivered = r.getDelivered();
  out.needs_transfer = r.getNeedsTransfer();
  out.restarted = r.getRestarted();
  return out;
}

Install install(wire::Install::Reader r) {
  Install out;
  out.view = view(r.getView());
  out.joiners = ids(r.getJoiners());
  if (r.hasPredecessor()) out.predecessor = key(r.getPredecessor());
  if (r.hasPredecessorView()) out.predecessor_view = view(r.getPredecessorView());
  out.delivered = seqs(r.getDelivered());
  return out;
}

Heartbeat heartbeat(wire::Message::Heartbeat::Reader r) {
  return Heartbeat{r.getHeld(),          r.getLeaving(),       ids(r.getKnown()),
                   key(r.getPromised()), r.getIdle(),          r.getInstalled(),
                   r.getFlowPause(),     r.getNeedsTransfer(), r.getApplying()};
}

Message message(wire::Message::Reader r) {
  Message m;
  m.version = r.getVersion();
  m.from = str(r.getFrom());
  m.history = str(r.getHistory());
  m.view = key(r.getView());
  switch (r.which()) {
    case wire::Message::HEARTBEAT:
      m.body = heartbeat(r.getHeartbeat());
      break;
    case wire::Message::DATA: {
      Data d;
      d.lowest = r.getData().getLowest();
      for (auto it : r.getData().getItems()) d.items.push_back({it.getSeq(), str(it.getPayload())});
      m.body = std::move(d);
      break;
    }
    case wire::Message::ORDER: {
      Order o;
      for (auto it : r.getOrder())
        o.items.push_back(
            {it.getPos(), str(it.getSender()), it.getSenderSeq(), str(it.getPayload())});
      m.body = std::move(o);
      break;
    }
    case wire::Message::ACK:
      m.body = Ack{r.getAck()};
      break;
    case wire::Message::PROPOSE:
      m.body = Propose{ids(r.getPropose())};
      break;
    case wire::Message::STATE:
      m.body = state(r.getState());
      break;
    case wire::Message::INSTALL:
      m.body = install(r.getInstall());
      break;
    case wire::Message::INSTALLED:
      m.body = Installed{};
      break;
    case wire::Message::COMMIT:
      m.body = Commit{};
      break;
    case wire::Message::ALIVE:
      m.body = Alive{r.getAlive().getFlowPause()};
      break;
    default:
      throw WireError("malformed gcs message: unknown kind");
  }
  return m;
}

}  // namespace

std::string encode_frame(const Frame& frame) {
  const auto* m = std::get_if<Message>(&frame);
  capnp::MallocMessageBuilder mb(first_segment_words(m ? payload_bytes(*m) : 1024));
  auto out = mb.initRoot<wire::Frame>();
  std::visit(
      [&](const auto& f) {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, Hello>) {
          auto h = out.initHello();
          h.setProtocolVersion(f.protocol_version);
          h.setClusterName(as_text(f.cluster_name));
          h.setHistory(as_data(f.history));
          set_peer(h.initSelf(), f.self);
        }
        if constexpr (std::is_same_v<T, Welcome>) {
          auto w = out.initWelcome();
          w.setProtocolVersion(f.protocol_version);
          w.setAccepted(f.accepted);
          w.setReason(as_text(f.reason));
          set_peer(w.initSelf(), f.self);
          w.setHistory(as_data(f.history));
          w.setClusterName(as_text(f.cluster_name));
          w.setPrimary(f.primary);
        }
        if constexpr (std::is_same_v<T, Directory>) {
          auto d = out.initDirectory(f.size());
          for (size_t i = 0; i < f.size(); ++i) set_peer(d[i], f[i]);
        }
        if constexpr (std::is_same_v<T, Message>) set_message(out.initMessage(), f);
      },
      frame);
  return to_bytes(mb);
}

Frame decode_frame(std::string_view bytes) {
  return with_reader<wire::Frame>(bytes, "gcs frame", [](wire::Frame::Reader r) -> Frame {
    switch (r.which()) {
      case wire::Frame::HELLO: {
        auto h = r.getHello();
        return Hello{h.getProtocolVersion(), str(h.getClusterName()), str(h.getHistory()),
                     peer(h.getSelf())};
      }
      case wire::Frame::WELCOME: {
        auto w = r.getWelcome();
        return Welcome{w.getProtocolVersion(), w.getAccepted(),     str(w.getReason()),
                       peer(w.getSelf()),      str(w.getHistory()), str(w.getClusterName()),
                       w.getPrimary()};
      }
      case wire::Frame::DIRECTORY: {
        Directory d;
        for (auto p : r.getDirectory()) d.push_back(peer(p));
        return d;
      }
      case wire::Frame::MESSAGE:
        return message(r.getMessage());
    }
    throw WireError("malformed gcs frame: unknown kind");
  });
}

std::string encode_log_entry(const LogEntry& e) {
  capnp::MallocMessageBuilder mb(first_segment_words(e.payload.size() + e.sender.size()));
  auto out = mb.initRoot<wire::LogRecord>();
  out.setFormatVersion(kLogFormatVersion);
  out.setSeqno(e.seqno);
  set_key(out.initView(), e.view);
  out.setSender(as_data(e.sender));
  out.setSenderSeq(e.sender_seq);
  out.setPayload(as_data(e.payload));
  return to_bytes(mb);
}

LogEntry decode_log_entry(std::string_view bytes) {
  return with_reader<wire::LogRecord>(bytes, "log record", [](wire::LogRecord::Reader r) {
    if (r.getFormatVersion() != kLogFormatVersion)
      throw WireError(fmt::format("log record of format version {}; this build reads {}",
                                  r.getFormatVersion(), kLogFormatVersion));
    return LogEntry{r.getSeqno(), key(r.getView()), str(r.getSender()), r.getSenderSeq(),
                    str(r.getPayload())};
  });
}

std::string encode_durable(const Durable& d) {
  capnp::MallocMessageBuilder mb(first_segment_words(d.sender_high.size() * 40 + 512));
  auto out = mb.initRoot<wire::DurableState>();
  out.setFormatVersion(kLogFormatVersion);
  out.setHistory(as_data(d.history));
  if (d.last_primary) set_view(out.initLastPrimary(), *d.last_primary);
  if (d.last_committed) set_view(out.initLastCommitted(), *d.last_committed);
  if (d.previous_primary) set_view(out.initPreviousPrimary(), *d.previous_primary);
  set_keys(out.initInstalls(d.installs.size()), d.installs);
  out.setNeedsTransfer(d.needs_transfer);
  out.setDelivered(d.delivered);
  set_key(out.initPromised(), d.promised);
  out.setIncarnation(d.incarnation);
  set_seqs(out.initSenderHigh(d.sender_high.size()), d.sender_high);
  return to_bytes(mb);
}

Durable decode_durable(std::string_view bytes) {
  return with_reader<wire::DurableState>(bytes, "gcs state", [](wire::DurableState::Reader r) {
    if (r.getFormatVersion() != kLogFormatVersion)
      throw WireError(fmt::format("gcs state of format version {}; this build reads {}",
                                  r.getFormatVersion(), kLogFormatVersion));
    Durable d;
    d.history = str(r.getHistory());
    if (r.hasLastPrimary()) d.last_primary = view(r.getLastPrimary());
    if (r.hasLastCommitted()) d.last_committed = view(r.getLastCommitted());
    if (r.hasPreviousPrimary()) d.previous_primary = view(r.getPreviousPrimary());
    d.installs = keys(r.getInstalls());
    d.needs_transfer = r.getNeedsTransfer();
    d.delivered = r.getDelivered();
    d.promised = key(r.getPromised());
    d.incarnation = r.getIncarnation();
    d.sender_high = seqs(r.getSenderHigh());
    return d;
  });
}

}  // namespace tutti::gcs
