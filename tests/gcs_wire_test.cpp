// The Cap'n Proto encoding of the gcs messages, link frames and persisted state.
#include <catch2/catch.hpp>

#include "gcs/group.hpp"
#include "gcs/wire.hpp"

using namespace tutti::gcs;

namespace {

const NodeId a(16, 'a'), b(16, 'b');

Message round_trip(const Message& m) {
  return std::get<Message>(decode_frame(encode_frame(m)));
}

ViewInfo view() {
  return ViewInfo{{7, a}, {a, b}, true, 40, {b}};
}

}  // namespace

TEST_CASE("gcs: every message kind round-trips") {
  Message m;
  m.from = a;
  m.history = std::string(16, 'h');
  m.view = {3, b};
  m.body = Heartbeat{5, false, {a, b}, {4, a}, true, false, true, true, false};
  auto hb = std::get<Heartbeat>(round_trip(m).body);
  CHECK(hb.needs_transfer);
  CHECK(!hb.applying);
  m.body = Heartbeat{5, false, {a, b}, {4, a}, false, false, false, false, true};
  CHECK(std::get<Heartbeat>(round_trip(m).body).applying);
  m.body = Heartbeat{5, false, {a, b}, {4, a}, true, false, true, true, false};
  CHECK(hb.known == std::vector<NodeId>{a, b});
  CHECK(hb.promised == ViewKey{4, a});
  CHECK(hb.idle);
  CHECK(hb.flow_pause);
  CHECK(round_trip(m).history == m.history);

  m.body = Data{9, {{9, "x"}, {10, std::string("\0y", 2)}}};
  auto d = std::get<Data>(round_trip(m).body);
  CHECK(d.lowest == 9);
  CHECK(d.items[1].payload == std::string("\0y", 2));

  m.body = Order{{{1, a, 9, "x"}, {2, b, 3, "z"}}};
  auto o = std::get<Order>(round_trip(m).body);
  CHECK(o.items[1].sender == b);
  CHECK(o.items[1].sender_seq == 3);

  m.body = Ack{42};
  CHECK(std::get<Ack>(round_trip(m).body).held == 42);

  m.body = Alive{true};
  CHECK(std::get<Alive>(round_trip(m).body).flow_pause);
  m.body = Alive{false};
  CHECK_FALSE(std::get<Alive>(round_trip(m).body).flow_pause);

  StateReport r;
  r.current = view();
  r.last_primary = view();
  r.installs = {{7, a}};
  r.lineage_held = 44;
  r.restarted = true;
  m.body = r;
  auto r2 = std::get<StateReport>(round_trip(m).body);
  CHECK(r2.current == view());
  CHECK(r2.last_primary == view());
  CHECK_FALSE(r2.last_committed);
  CHECK(r2.lineage_held == 44);
  CHECK(r2.restarted);

  Install inst{view(), {b}, ViewKey{6, a}, std::nullopt, {{a, 40}, {b, 12}}};
  m.body = inst;
  auto i2 = std::get<Install>(round_trip(m).body);
  CHECK(i2.view == view());
  CHECK(i2.joiners == std::vector<NodeId>{b});
  CHECK(i2.predecessor == ViewKey{6, a});
  CHECK_FALSE(i2.predecessor_view);
  CHECK(i2.delivered.at(b) == 12);

  m.body = Commit{};
  CHECK(std::holds_alternative<Commit>(round_trip(m).body));
}

TEST_CASE("gcs: handshakes and directories round-trip") {
  PeerInfo p{a, "n1", "127.0.0.1:1", "127.0.0.1:2", "SYNCED", 17};
  auto h = std::get<Hello>(decode_frame(encode_frame(Hello{1, "c", "", p})));
  CHECK(h.self == p);
  CHECK(h.cluster_name == "c");
  auto w =
      std::get<Welcome>(decode_frame(encode_frame(Welcome{1, false, "no", p, "h", "c", true})));
  CHECK_FALSE(w.accepted);
  CHECK(w.reason == "no");
  CHECK(w.history == "h");
  CHECK(w.cluster_name == "c");
  CHECK(w.primary);
  auto dir = std::get<Directory>(decode_frame(encode_frame(Directory{p, p})));
  CHECK(dir.size() == 2);
}

TEST_CASE("gcs: log entries and durable state round-trip") {
  LogEntry e{12, {3, a}, b, 99, "payload"};
  auto e2 = decode_log_entry(encode_log_entry(e));
  CHECK(e2.seqno == 12);
  CHECK(e2.view == e.view);
  CHECK(e2.sender == b);
  CHECK(e2.payload == "payload");
  Durable d;
  d.history = "h";
  d.last_primary = view();
  d.installs = {{7, a}};
  d.delivered = 40;
  d.promised = {8, b};
  d.incarnation = 3;
  d.sender_high = {{a, 5}};
  auto d2 = decode_durable(encode_durable(d));
  CHECK(d2.last_primary == view());
  CHECK_FALSE(d2.previous_primary);
  CHECK(d2.promised == d.promised);
  CHECK(d2.sender_high == d.sender_high);
}

TEST_CASE("gcs: garbage and truncated frames are a WireError - never a crash") {
  Message m;
  m.from = a;
  m.body = Order{{{1, a, 9, std::string(1000, 'x')}}};
  const std::string bytes = encode_frame(m);
  for (size_t cut = 0; cut < bytes.size(); cut += 8) {
    try {
      (void)decode_frame(bytes.substr(0, cut));
    } catch (const WireError&) {
    }
  }
  CHECK_THROWS_AS(decode_frame(std::string(64, '\xff')), WireError);
  CHECK_THROWS_AS(decode_frame("abc"), WireError);
  CHECK_THROWS_AS(decode_log_entry(std::string(16, '\0')), WireError);
}

TEST_CASE("gcs: a held-back batch merges with what follows - a truncation drops what it covers") {
  MemberReady first;
  first.append = {{5, {}, a, 1, "x"}, {6, {}, a, 2, "y"}};
  MemberReady second;
  second.truncate_after = 5;
  second.append = {{6, {}, b, 1, "z"}};
  merge_ready(first, std::move(second));
  CHECK(first.truncate_after == 5u);
  REQUIRE(first.append.size() == 2);
  CHECK(first.append[0].seqno == 5);
  CHECK(first.append[1].sender == b);
}
