// Node driven directly, without sockets: requests in, flush, replies out.
#include <catch2/catch.hpp>

#include "core/codec.hpp"
#include "core/node.hpp"
#include "core/uuid.hpp"
#include "fault_env.hpp"
#include "gcs/group.hpp"
#include "gcs/wire.hpp"
#include "temp_dir.hpp"

using namespace tutti;
using namespace tutti::core;
using tutti::test::TempDir;

namespace {

// A group that never has peers: what it sends goes nowhere.
struct NoPeers : gcs::Outbox {
  void send(const gcs::NodeId&, const gcs::Message&) override {}
};

struct Harness {
  TempDir dir;
  std::unique_ptr<storage::Store> store;
  NoPeers outbox;
  std::unique_ptr<gcs::Group> group;
  std::unique_ptr<Node> node;
  int flush_requests = 0;
  std::vector<Response> replies;

  explicit Harness(storage::Options o = {}, NodeLimits limits = {}, bool bootstrap = true) {
    o.dir = dir.path();
    store = storage::Store::open(o);
    store->write([](storage::WriteTxn& t) { t.set_identity("", random_uuid()); });
    auto meta = store->read()->meta();
    group = std::make_unique<gcs::Group>(
        std::make_unique<gcs::Member>(meta.node_uuid, load_durable(*store), gcs::Config{},
                                      std::vector<gcs::NodeId>{}, 0),
        outbox);
    if (bootstrap) group->member().bootstrap(random_uuid());
    node = std::make_unique<Node>("n1", *store, *group, limits, [this] { ++flush_requests; });
    node->flush();
  }

  void send(Request r) {
    node->handle(std::move(r), [this](Response resp) { replies.push_back(std::move(resp)); });
  }
  Response call(Request r) {
    send(std::move(r));
    node->flush();
    REQUIRE_FALSE(replies.empty());
    Response out = replies.back();
    replies.clear();
    return out;
  }
  Response put(const std::string& txn, const std::string& key, const std::string& value) {
    return call(Request{1, CommitRequest{txn, {}, {WriteItem{key, value}}}});
  }
};

}  // namespace

TEST_CASE("a commit is answered only after flush persisted and applied it") {
  Harness h;
  h.send(Request{5, CommitRequest{"t1", {}, {WriteItem{"k", "v"}}}});
  CHECK(h.replies.empty());
  CHECK(h.flush_requests >= 1);
  h.node->flush();
  REQUIRE(h.replies.size() == 1);
  CHECK(h.replies[0].id == 5);
  auto c = std::get<CommitReply>(h.replies[0].body);
  CHECK(c.committed);
  CHECK(c.seqno == 1);
  auto r = h.store->read();
  CHECK(r->get("k")->value == "v");
  CHECK(r->log_get(1).has_value());
}

TEST_CASE("many commits in one flush share one storage transaction and keep their order") {
  Harness h;
  for (int i = 0; i < 100; ++i)
    h.send(
        Request{static_cast<uint64_t>(i),
                CommitRequest{"t" + std::to_string(i), {}, {WriteItem{"k", std::to_string(i)}}}});
  h.node->flush();
  REQUIRE(h.replies.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(std::get<CommitReply>(h.replies[i].body).seqno == i + 1u);
  CHECK(h.store->read()->get("k")->value == "99");
}

TEST_CASE("gets and scans see committed writes with their versions") {
  Harness h;
  h.put("t1", "a/1", "x");
  h.put("t2", "a/2", "y");
  auto v = std::get<ValueReply>(h.call(Request{1, GetRequest{"a/2"}}).body);
  CHECK(v.found);
  CHECK(v.value == "y");
  CHECK(v.version == 2);
  CHECK_FALSE(v.may_be_stale);
  auto missing = std::get<ValueReply>(h.call(Request{1, GetRequest{"nope"}}).body);
  CHECK_FALSE(missing.found);
  auto s = std::get<ScanReply>(h.call(Request{1, ScanRequest{"a/", 10}}).body);
  CHECK(s.entries.size() == 2);
}

TEST_CASE(
    "a node that holds none of a cluster's state refuses local reads rather than say "
    "not found") {
  Harness fresh({}, {}, false);  // never joined a cluster
  for (Request r : {Request{1, GetRequest{"k", Consistency::local}},
                    Request{2, ScanRequest{"", 0, Consistency::local}}}) {
    auto reply = fresh.call(r);
    auto* e = std::get_if<ErrorReply>(&reply.body);
    REQUIRE(e);
    CHECK(e->code == ErrorCode::unavailable);
    CHECK_THAT(e->message, Catch::Contains("has not joined a cluster yet"));
  }
  Harness booted;  // a cluster of its own, still empty: its state is the empty one
  auto v = booted.call(Request{1, GetRequest{"k", Consistency::local}});
  REQUIRE(std::holds_alternative<ValueReply>(v.body));
  CHECK_FALSE(std::get<ValueReply>(v.body).found);
}

TEST_CASE("a scan the node caps says it was cut short - one that fits does not") {
  NodeLimits limits;
  limits.max_scan_entries = 3;
  Harness h({}, limits);
  for (int i = 0; i < 4; ++i) h.put("t" + std::to_string(i), "k/" + std::to_string(i), "v");
  auto all = std::get<ScanReply>(h.call(Request{1, ScanRequest{"k/", 0}}).body);
  CHECK(all.entries.size() == 3);
  CHECK(all.truncated);  // no limit asked: the node's cap cut it
  auto asked = std::get<ScanReply>(h.call(Request{1, ScanRequest{"k/", 2}}).body);
  CHECK(asked.entries.size() == 2);
  CHECK_FALSE(asked.truncated);  // the client's own limit
  auto fits = std::get<ScanReply>(h.call(Request{1, ScanRequest{"k/1", 0}}).body);
  CHECK(fits.entries.size() == 1);
  CHECK_FALSE(fits.truncated);
}

TEST_CASE("cas: exactly one of two writers with the same read version wins") {
  Harness h;
  h.put("t0", "k", "start");
  h.send(Request{1, CommitRequest{"a", {ReadItem{"k", 1}}, {WriteItem{"k", "A"}}}});
  h.send(Request{2, CommitRequest{"b", {ReadItem{"k", 1}}, {WriteItem{"k", "B"}}}});
  h.node->flush();
  REQUIRE(h.replies.size() == 2);
  auto a = std::get<CommitReply>(h.replies[0].body);
  auto b = std::get<CommitReply>(h.replies[1].body);
  CHECK(a.committed);
  CHECK_FALSE(b.committed);
  CHECK(b.conflict_keys == std::vector<std::string>{"k"});
  CHECK(h.store->read()->get("k")->value == "A");
}

TEST_CASE("a retry of a committed or in-flight transaction id is answered - not applied twice") {
  Harness h;
  auto first = std::get<CommitReply>(h.put("same", "k", "v1").body);
  h.put("other", "k", "v2");
  auto retry = std::get<CommitReply>(h.put("same", "k", "v1").body);
  CHECK(retry.duplicate);
  CHECK(retry.seqno == first.seqno);
  CHECK(h.store->read()->get("k")->value == "v2");

  h.send(Request{1, CommitRequest{"inflight", {}, {WriteItem{"j", "1"}}}});
  h.send(Request{2, CommitRequest{"inflight", {}, {WriteItem{"j", "1"}}}});
  h.node->flush();
  REQUIRE(h.replies.size() == 2);
  CHECK(std::get<CommitReply>(h.replies[0].body).seqno ==
        std::get<CommitReply>(h.replies[1].body).seqno);
  CHECK(h.store->read()->meta().last_committed == 3);
}

TEST_CASE("bad input gets a clear error and changes nothing") {
  NodeLimits limits;
  limits.max_key_bytes = 8;
  limits.max_value_bytes = 16;
  Harness h({}, limits);
  auto err = [&](Request r) { return std::get<ErrorReply>(h.call(std::move(r)).body); };
  CHECK(err(Request{1, CommitRequest{"t", {}, {WriteItem{"123456789", "v"}}}}).code ==
        ErrorCode::too_large);
  auto big = err(Request{1, CommitRequest{"t", {}, {WriteItem{"k", std::string(17, 'v')}}}});
  CHECK(big.code == ErrorCode::too_large);
  CHECK_THAT(big.message, Catch::Contains("over the limit of 16 bytes"));
  CHECK(err(Request{1, CommitRequest{"", {}, {WriteItem{"k", "v"}}}}).code ==
        ErrorCode::bad_request);
  CHECK(err(Request{1, CommitRequest{"t", {}, {}}}).code == ErrorCode::bad_request);
  CHECK(err(Request{1, CommitRequest{"t", {}, {WriteItem{"k", "1"}, WriteItem{"k", "2"}}}}).code ==
        ErrorCode::bad_request);
  CHECK(err(Request{1, CommitRequest{"t", {}, {WriteItem{"", "v"}}}}).code ==
        ErrorCode::bad_request);
  CHECK(err(Request{1, GetRequest{std::string(9, 'k')}}).code == ErrorCode::too_large);
  CHECK(h.store->read()->meta().last_committed == 0);
}

TEST_CASE("a database that cannot grow refuses commits clearly - reads go on") {
  storage::Options o;
  o.initial_map_bytes = 1 << 20;
  o.max_map_bytes = 2 << 20;
  Harness h(o);
  h.put("small", "k", "v");
  const std::string value(512 << 10, 'x');
  std::optional<ErrorReply> refused;
  for (int i = 0; i < 8 && !refused; ++i) {
    h.send(Request{
        1,
        CommitRequest{"big" + std::to_string(i), {}, {WriteItem{"b" + std::to_string(i), value}}}});
    h.node->flush();
    for (auto& r : h.replies)
      if (auto* e = std::get_if<ErrorReply>(&r.body)) refused = *e;
    h.replies.clear();
  }
  // The batch that could not be persisted was never acknowledged: it waits to be persisted again,
  // and meanwhile the node refuses to take more.
  REQUIRE(refused);
  CHECK(refused->code == ErrorCode::storage);
  CHECK_THAT(refused->message, Catch::Contains("not committed"));
  CHECK(h.group->stuck());
  CHECK(std::get<ValueReply>(h.call(Request{1, GetRequest{"k"}}).body).value == "v");
}

TEST_CASE("a slow write with no write-sets waiting is no backlog - it pauses nothing") {
  test::FaultEnv env;
  env.commit_delay = std::chrono::milliseconds(300);  // as if the process was stopped
  storage::Options o;
  o.env = &env;
  NodeLimits limits;
  limits.flow_pause_write_time = std::chrono::milliseconds(100);
  Harness h(o, limits);
  h.node->directory_changed();  // a batch that writes meta only, slowly
  h.node->flush();
  CHECK(h.node->status().paused_by.empty());
  // A slow write that write-sets waited for is a backlog: the group is asked to pause.
  h.send(Request{1, CommitRequest{"t1", {}, {WriteItem{"k", "v"}}}});
  h.node->flush();
  CHECK(h.node->status().paused_by == std::vector<std::string>{"n1"});
}

TEST_CASE(
    "a commit whose disk write or fsync fails is never acknowledged - it lands once the disk "
    "works") {
  for (auto kind : {test::FaultEnv::Kind::io, test::FaultEnv::Kind::disk_full}) {
    test::FaultEnv env;
    storage::Options o;
    o.env = &env;
    Harness h(o);
    h.put("t1", "k", "v1");
    env.fail = kind;
    h.send(Request{1, CommitRequest{"t2", {}, {WriteItem{"k", "v2"}}}});
    h.node->flush();
    CHECK(h.replies.empty());  // silent: it does not hold t2
    CHECK(h.group->stuck());
    CHECK_FALSE(h.node->status().primary);
    CHECK_THAT(h.node->status().waiting_for, Catch::Contains("injected"));
    // Refused at the door meanwhile, and not retried before the retry interval.
    auto refused = h.call(Request{2, CommitRequest{"t3", {}, {WriteItem{"k", "v3"}}}});
    CHECK(std::get<ErrorReply>(refused.body).code == ErrorCode::storage);
    const uint64_t tried = env.commits_tried;
    h.node->flush();
    CHECK(env.commits_tried == tried);
    env.fail.reset();
    env.advance(std::chrono::milliseconds(250));
    h.node->flush();
    REQUIRE(h.replies.size() == 1);
    CHECK(std::get<CommitReply>(h.replies[0].body).committed);
    CHECK(h.store->read()->get("k")->value == "v2");
    CHECK(h.node->status().primary);
  }
}

namespace {

// What the group sends, by kind.
struct Recorder : gcs::Outbox {
  std::vector<gcs::Message> sent;
  void send(const gcs::NodeId&, const gcs::Message& m) override { sent.push_back(m); }
  template <typename T>
  std::vector<const T*> of() const {
    std::vector<const T*> out;
    for (const auto& m : sent)
      if (auto* b = std::get_if<T>(&m.body)) out.push_back(b);
    return out;
  }
};

// A storage thread that writes a batch only when told to: the batch is on its way meanwhile.
struct HeldPersister : Persister {
  storage::Store& store;
  std::optional<std::pair<PersistBatch, Done>> job;
  explicit HeldPersister(storage::Store& s) : store(s) {}
  void submit(PersistBatch batch, bool, Done done, Decided, Logged) override {
    job.emplace(std::move(batch), std::move(done));
  }
  void finish() {
    auto [batch, done] = std::move(*job);
    job.reset();
    done(persist(store, "", std::move(batch), false));
  }
};

}  // namespace

TEST_CASE(
    "a batch long on its way to disk: the node says it lives at each heartbeat interval - a "
    "voter whose write-sets wait past the bound asks the group to pause") {
  test::FaultEnv env;
  TempDir dir;
  storage::Options o;
  o.dir = dir.path();
  o.env = &env;
  auto store = storage::Store::open(o);
  store->write([](storage::WriteTxn& t) { t.set_identity("", random_uuid()); });
  Recorder outbox;
  gcs::Group group(
      std::make_unique<gcs::Member>(store->read()->meta().node_uuid, load_durable(*store),
                                    gcs::Config{}, std::vector<gcs::NodeId>{}, 0),
      outbox);
  group.member().bootstrap(random_uuid());
  group.member().meet("peer");  // someone to tell
  HeldPersister persister(*store);
  NodeLimits limits;
  limits.flow_pause_write_time = std::chrono::milliseconds(300);
  Node node(
      "n1", *store, group, limits, [] {}, nullptr, &persister);
  node.flush();
  persister.finish();
  std::vector<Response> replies;
  node.handle(Request{1, CommitRequest{"t1", {}, {WriteItem{"k", "v"}}}},
              [&](Response r) { replies.push_back(std::move(r)); });
  node.flush();
  REQUIRE(persister.job);
  outbox.sent.clear();

  node.tick();  // just submitted: nothing to say yet
  CHECK(outbox.of<gcs::Alive>().empty());
  env.advance(std::chrono::milliseconds(100));
  node.tick();
  REQUIRE(outbox.of<gcs::Alive>().size() == 1);
  CHECK_FALSE(outbox.of<gcs::Alive>()[0]->flow_pause);
  node.tick();  // once per interval
  CHECK(outbox.of<gcs::Alive>().size() == 1);
  env.advance(std::chrono::milliseconds(250));  // 350 ms on its way, a write-set waiting
  node.tick();
  REQUIRE(outbox.of<gcs::Alive>().size() == 2);
  CHECK(outbox.of<gcs::Alive>()[1]->flow_pause);
  // Nothing else left meanwhile: what the batch holds (heartbeats, acks) waits for the disk.
  CHECK(outbox.of<gcs::Heartbeat>().empty());
  CHECK(replies.empty());

  persister.finish();
  REQUIRE(replies.size() == 1);
  CHECK(std::get<CommitReply>(replies[0].body).committed);
  env.advance(std::chrono::milliseconds(500));
  node.tick();  // nothing on its way: heartbeats speak for it again
  CHECK(outbox.of<gcs::Alive>().size() == 2);
}

namespace {

gcs::MemberReady delivering(std::vector<gcs::Delivery> deliveries, uint64_t first_appended) {
  gcs::MemberReady ready;
  ready.meta = gcs::Durable{};  // a batch without it writes nothing
  if (first_appended > 0)
    ready.append.push_back(gcs::LogEntry{first_appended, {}, "me", 1, "appended"});
  for (auto& d : deliveries) ready.events.push_back(std::move(d));
  return ready;
}

std::string put_writeset(const std::string& origin, const std::string& txn) {
  return encode_writeset(WriteSet{origin, txn, {}, {WriteItem{"k-" + txn, "v"}}});
}

}  // namespace

TEST_CASE(
    "an outcome is told before its batch commits only when its write-set was on disk before") {
  struct Row {
    const char* what;
    uint64_t first_appended;  // 0: the batch appends nothing
    bool at_view_change;
    bool truncates;
    bool told;
  };
  const Row rows[] = {
      {"logged by an earlier batch, nothing appended now", 0, false, false, true},
      {"logged by an earlier batch, later positions appended now", 8, false, false, true},
      {"appended in this very batch", 7, false, false, false},
      {"appended in this batch, behind an earlier one", 5, false, false, false},
      {"delivered at a view change", 0, true, false, false},
      {"in a batch that truncates the log", 0, false, true, false},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    gcs::MemberReady ready = delivering({}, row.first_appended);
    if (row.truncates) ready.truncate_after = 3;
    const gcs::Delivery d{7, "me", "payload", 1, row.at_view_change};
    CHECK(decided_before_commit(ready, d) == row.told);
  }
}

TEST_CASE(
    "a batch that records deliveries and log entries only commits its deliveries without waiting "
    "for their meta page") {
  struct Row {
    const char* what;
    void (*change)(PersistBatch&);
    bool deliveries_only;
  };
  const Row rows[] = {
      {"deliveries of what earlier batches logged", [](PersistBatch&) {}, true},
      {"log entries appended (the log's own flush holds them)",
       [](PersistBatch& b) { b.ready.append.push_back({}); }, true},
      {"the log truncated", [](PersistBatch& b) { b.ready.truncate_after = 3; }, true},
      {"a view, promise or incarnation changed",
       [](PersistBatch& b) { b.ready.durable_changed = true; }, false},
      {"the member directory", [](PersistBatch& b) { b.directory = "peers"; }, false},
      {"a transfer's write", [](PersistBatch& b) { b.transfer = TransferWrite{}; }, false},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    PersistBatch batch{delivering({gcs::Delivery{7, "me", "payload", 1, false}}, 0), std::nullopt,
                       std::nullopt};
    row.change(batch);
    CHECK(batch.log_and_deliveries_only() == row.deliveries_only);
    CHECK(batch.meta_may_lag() == row.deliveries_only);
  }
}

TEST_CASE(
    "a learner waiting for its transfer commits its snapshot chunks without waiting for their "
    "meta page, and nothing else") {
  struct Row {
    const char* what;
    void (*change)(PersistBatch&);
    bool meta_may_lag;
  };
  const auto stage = [](PersistBatch& b) {
    b.transfer = TransferWrite{};
    b.transfer->kind = TransferWrite::Kind::stage;
  };
  const Row rows[] = {
      {"log entries appended", [](PersistBatch&) {}, true},
      {"... and a snapshot chunk staged", stage, true},
      {"... and a transfer's write-sets applied",
       [](PersistBatch& b) {
         b.transfer = TransferWrite{};
         b.transfer->kind = TransferWrite::Kind::apply;
       },
       false},
      {"... and the snapshot installed",
       [](PersistBatch& b) {
         b.transfer = TransferWrite{};
         b.transfer->kind = TransferWrite::Kind::install;
       },
       false},
      {"... and the log truncated", [](PersistBatch& b) { b.ready.truncate_after = 3; }, true},
      {"... and a view, promise or incarnation changed",
       [](PersistBatch& b) { b.ready.durable_changed = true; }, false},
      {"... and the member directory", [](PersistBatch& b) { b.directory = "peers"; }, false},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    PersistBatch batch;
    batch.ready.append.push_back({});
    batch.learner = true;
    row.change(batch);
    CHECK(batch.meta_may_lag() == row.meta_may_lag);
    batch.learner = false;  // a voter's batch of the same: no snapshot chunk
    const bool stages = batch.transfer && batch.transfer->kind == TransferWrite::Kind::stage;
    CHECK(batch.meta_may_lag() == (row.meta_may_lag && !stages));
  }
}

TEST_CASE("write_batch tells this node's outcomes that may be told, once, before it commits") {
  TempDir dir;
  storage::Options o;
  o.dir = dir.path();
  auto store = storage::Store::open(o);
  store->write([](storage::WriteTxn& t) { t.set_identity("", random_uuid()); });
  // Seqnos 1 (ours), 2 (another node's), 3 (ours, appended in this batch).
  PersistBatch batch{delivering({gcs::Delivery{1, "me", put_writeset("me", "t1"), 1, false},
                                 gcs::Delivery{2, "other", put_writeset("other", "t2"), 1, false},
                                 gcs::Delivery{3, "me", put_writeset("me", "t3"), 2, false}},
                                3),
                     std::nullopt, std::nullopt};
  TransferWritten transferred;
  std::vector<Certified> transfer_certified;
  // Told before the commit: a teller that throws leaves nothing written.
  struct Stop {};
  const Decided stop = [](std::vector<Decision>) { throw Stop{}; };
  CHECK_THROWS_AS(
      write_batch(*store, "me", batch, false, &transferred, &transfer_certified, nullptr, &stop),
      Stop);
  CHECK(store->read()->meta().last_committed == 0);

  std::vector<std::vector<Decision>> calls;
  const Decided decided = [&](std::vector<Decision> early) { calls.push_back(std::move(early)); };
  auto certified =
      write_batch(*store, "me", batch, false, &transferred, &transfer_certified, nullptr, &decided);
  REQUIRE(calls.size() == 1);
  REQUIRE(calls[0].size() == 1);
  CHECK(calls[0][0].txn_id == "t1");
  CHECK(calls[0][0].outcome.committed);
  REQUIRE(certified.size() == 3);
  CHECK(store->read()->meta().last_committed == 3);

  // Nothing that may be told: told so (once), with nothing.
  PersistBatch later{delivering({gcs::Delivery{4, "me", put_writeset("me", "t4"), 3, true}}, 0),
                     std::nullopt, std::nullopt};
  calls.clear();
  write_batch(*store, "me", later, false, &transferred, &transfer_certified, nullptr, &decided);
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].empty());
}

TEST_CASE(
    "persist says when a batch of log entries and deliveries has its log on disk - before its "
    "deliveries commit - and says nothing of one that changes the durable state") {
  TempDir dir;
  auto store = storage::Store::open(storage::Options{dir.path()});
  store->write([](storage::WriteTxn& t) {
    t.set_identity("history", "me");
    t.log_append(1, gcs::encode_log_entry(gcs::LogEntry{1, {}, "me", 1, put_writeset("me", "a")}));
  });
  for (bool view_change : {false, true}) {
    INFO((view_change ? "a view change" : "deliveries and log entries"));
    const uint64_t seqno = store->read()->meta().last_committed + 1;
    PersistBatch batch{
        delivering({gcs::Delivery{seqno, "me", put_writeset("me", "t" + std::to_string(seqno)),
                                  seqno, false}},
                   seqno + 1),
        std::nullopt, std::nullopt};
    batch.ready.append.back().payload = put_writeset("me", "next");
    batch.ready.durable_changed = view_change;
    int told = 0;
    const Logged logged = [&] {
      ++told;
      auto r = store->read();
      CHECK(r->log_get(seqno + 1));                  // the log is written
      CHECK(r->meta().last_committed == seqno - 1);  // its deliveries are not yet
    };
    const PersistResult result = persist(*store, "me", std::move(batch), false, nullptr, &logged);
    REQUIRE(result.ok);
    CHECK(told == (view_change ? 0 : 1));
    CHECK(store->read()->meta().last_committed == seqno);
  }
}
