// The two halves of state transfer (core/transfer.hpp) over real stores, with the pulls carried
// by hand: what a joiner asks for after silence, a refusal or a restart.
#include <catch2/catch.hpp>

#include "core/codec.hpp"
#include "core/persister.hpp"
#include "core/transfer.hpp"
#include "temp_dir.hpp"

using namespace tutti;
using namespace tutti::core;
using tutti::test::TempDir;

namespace {

constexpr uint64_t kKeys = 2000;
const std::string kDonor = "donor-uuid-0000", kOther = "other-uuid-0000";

std::unique_ptr<storage::Store> open_store(const std::filesystem::path& dir) {
  storage::Options o;
  o.dir = dir;
  return storage::Store::open(o);
}

std::unique_ptr<storage::Store> donor_store(const std::filesystem::path& dir) {
  auto s = open_store(dir);
  s->write([](storage::WriteTxn& t) {
    for (uint64_t i = 1; i <= kKeys; ++i)
      t.put("key" + std::to_string(i), i, std::string(400, static_cast<char>('a' + i % 26)));
    t.set_last_committed(kKeys);
  });
  return s;
}

const SnapshotPull& snapshot_pull(const Joiner::Pull& p) {
  REQUIRE(std::holds_alternative<SnapshotPull>(p.request.pull));
  return std::get<SnapshotPull>(p.request.pull);
}

// Writes what the joiner has to write, as the node's persister would.
void write_all(Joiner& j, storage::Store& store, Clock::time_point now) {
  while (auto w = j.take_write(now)) {
    PersistResult r = persist(store, "joiner-uuid", PersistBatch{{}, std::nullopt, *w}, false);
    REQUIRE(r.ok);
    if (!r.transfer_rejected.empty()) {
      j.write_rejected(r.transfer_rejected, now);
      continue;
    }
    j.written(r.transferred, now);
  }
}

// One pull answered by `donor` (or by silence), and what it brought written.
void exchange(Joiner& j, Donor& donor, storage::Store& store, Clock::time_point now,
              bool silent = false) {
  auto p = j.poll(now);
  REQUIRE(p);
  if (silent) {
    j.on_reply(p->number, std::nullopt, now);
  } else {
    j.on_reply(p->number, donor.serve(1, p->request, now), now);
  }
  write_all(j, store, now);
}

std::optional<SnapshotResume> staged_record(storage::Store& store) {
  auto raw = store.read()->meta_get(kMetaSnapshotResume);
  if (!raw) return std::nullopt;
  return decode_snapshot_resume(*raw);
}

Joiner make_joiner(Clock::time_point now, std::optional<SnapshotResume> resume = std::nullopt) {
  Joiner j("history", "joiner", 0, {}, Joiner::Options{{}, 16 * 1024}, now, std::move(resume));
  j.set_target(kKeys, {kDonor});
  return j;
}

void check_installed(storage::Store& joiner, storage::Store& donor) {
  CHECK_NOTHROW(joiner.verify(true));  // the recorded hash is the content's
  auto r = joiner.read();
  CHECK(r->meta().last_committed == kKeys);
  CHECK(r->meta().content_hash == donor.read()->meta().content_hash);
  CHECK(!r->meta_get(kMetaSnapshotResume));  // gone with the install
}

// A joiner part-way through a snapshot: `chunks` pulls answered and staged.
struct Halfway {
  explicit Halfway(int chunks) {
    for (int i = 0; i < chunks; ++i) exchange(*joiner, donor, *jstore, now);
    staged = staged_record(*jstore);
    REQUIRE(staged);
  }
  TempDir ddir, jdir;
  std::unique_ptr<storage::Store> dstore = donor_store(ddir.path());
  std::unique_ptr<storage::Store> jstore = open_store(jdir.path());
  Donor donor{*dstore};
  Clock::time_point now{};
  std::unique_ptr<Joiner> joiner = std::make_unique<Joiner>(make_joiner(now));
  std::optional<SnapshotResume> staged;
};

}  // namespace

TEST_CASE("transfer: after silence, and after a restart, the joiner resumes its snapshot session") {
  Halfway h(6);  // the first: the log does not hold seqno 1, so a snapshot
  auto& [ddir, jdir, dstore, jstore, donor, now, joiner, staged] = h;
  CHECK(staged->donor == kDonor);
  CHECK(staged->header.seqno == kKeys);
  CHECK(staged->header.cursor.started);

  SECTION("silence: the same session, from where it stopped, after kResumeRetry") {
    exchange(*joiner, donor, *jstore, now, true);
    CHECK(!joiner->poll(now + kResumeRetry / 2));
    auto p = joiner->poll(now + kResumeRetry);
    REQUIRE(p);
    CHECK(p->donor == kDonor);
    CHECK(snapshot_pull(*p).session == staged->header.session);
    CHECK(snapshot_pull(*p).seqno == kKeys);
    CHECK(snapshot_pull(*p).cursor.after == staged->header.cursor.after);
    now += kResumeRetry;
    joiner->on_reply(p->number, donor.serve(1, p->request, now), now);
    write_all(*joiner, *jstore, now);
    while (!joiner->done()) exchange(*joiner, donor, *jstore, now);
  }
  SECTION("restart: the record in meta resumes the session") {
    joiner.reset();
    jstore.reset();
    jstore = open_store(jdir.path());
    now += std::chrono::seconds(2);
    joiner = std::make_unique<Joiner>(make_joiner(now, staged_record(*jstore)));
    auto p = joiner->poll(now);
    REQUIRE(p);
    CHECK(snapshot_pull(*p).session == staged->header.session);
    CHECK(snapshot_pull(*p).cursor.after == staged->header.cursor.after);
    CHECK(joiner->progress(now).done == staged->received_bytes);
    joiner->on_reply(p->number, donor.serve(1, p->request, now), now);
    write_all(*joiner, *jstore, now);
    while (!joiner->done()) exchange(*joiner, donor, *jstore, now);
  }
  SECTION("silence for longer than the donor keeps a session: another donor, from the start") {
    joiner->set_target(kKeys, {kDonor, kOther});
    auto p = joiner->poll(now);
    REQUIRE(p);
    now += kSessionIdle;
    joiner->on_reply(p->number, std::nullopt, now);
    now += kResumeRetry;
    p = joiner->poll(now);
    REQUIRE(p);
    CHECK(p->donor == kOther);
    CHECK(snapshot_pull(*p).session == 0);
    joiner->on_reply(p->number, donor.serve(1, p->request, now), now);  // served all the same
    write_all(*joiner, *jstore, now);
    while (!joiner->done()) exchange(*joiner, donor, *jstore, now);
  }
  check_installed(*jstore, *dstore);
}

TEST_CASE("transfer: a session that is gone, another joiner's or another seqno's starts over") {
  TempDir ddir, jdir;
  auto dstore = donor_store(ddir.path());
  auto jstore = open_store(jdir.path());
  auto donor = std::make_unique<Donor>(*dstore);
  Clock::time_point now{};
  auto joiner = std::make_unique<Joiner>(make_joiner(now));
  for (int i = 0; i < 4; ++i) exchange(*joiner, *donor, *jstore, now);
  auto staged = staged_record(*jstore);
  REQUIRE(staged);

  // The donor refuses a pull of that session from another joiner, or at another seqno.
  TransferRequest req{"history",
                      SnapshotPull{staged->header.session, staged->header.cursor, 1024,
                                   staged->header.seqno, std::nullopt},
                      "someone-else"};
  CHECK(std::holds_alternative<ErrorReply>(donor->serve(2, req, now).body));
  req.joiner = "joiner";
  std::get<SnapshotPull>(req.pull).seqno = kKeys - 1;
  CHECK(std::holds_alternative<ErrorReply>(donor->serve(3, req, now).body));
  std::get<SnapshotPull>(req.pull).seqno = kKeys;
  CHECK(std::holds_alternative<TransferReply>(donor->serve(4, req, now).body));

  SECTION("the donor restarted: refused, and a new snapshot carries what is staged forward") {
    donor = std::make_unique<Donor>(*dstore);
    dstore->write([](storage::WriteTxn& t) {
      t.put("later", kKeys + 1, "after the first snapshot");
      t.set_last_committed(kKeys + 1);
    });
    joiner = std::make_unique<Joiner>(make_joiner(now, staged));
    exchange(*joiner, *donor, *jstore, now);  // refused: no such session
    CHECK(!joiner->poll(now + kResumeRetry));
    now += kDonorBackoff;
    auto p = joiner->poll(now);
    REQUIRE(p);
    CHECK(snapshot_pull(*p).session == 0);
    REQUIRE(snapshot_pull(*p).reconcile);
    CHECK(snapshot_pull(*p).reconcile->since == kKeys);
    CHECK(snapshot_pull(*p).reconcile->through.after == staged->header.cursor.after);
    joiner->on_reply(p->number, donor->serve(1, p->request, now), now);
    write_all(*joiner, *jstore, now);
    while (!joiner->done()) exchange(*joiner, *donor, *jstore, now);
    CHECK(jstore->read()->meta().last_committed == kKeys + 1);
    CHECK(jstore->read()->meta().content_hash == dstore->read()->meta().content_hash);
    CHECK(jstore->read()->get("later"));
  }
  SECTION("its donor is not in the view for kDonorGone: another, from the start") {
    joiner = std::make_unique<Joiner>(
        Joiner("history", "joiner", 0, {}, Joiner::Options{{}, 16 * 1024}, now, staged));
    joiner->set_target(kKeys, {kOther});
    CHECK(!joiner->poll(now));  // a view formed around a restarted node may lack it for now
    CHECK(!joiner->poll(now + kDonorGone / 2));
    now += kDonorGone;
    auto p = joiner->poll(now);
    REQUIRE(p);
    CHECK(p->donor == kOther);
    CHECK(snapshot_pull(*p).session == 0);
    joiner->on_reply(p->number, donor->serve(1, p->request, now), now);
    write_all(*joiner, *jstore, now);
    while (!joiner->done()) exchange(*joiner, *donor, *jstore, now);
    check_installed(*jstore, *dstore);
  }
}

TEST_CASE("transfer: a restarted joiner waits for its snapshot's donor to be in the view") {
  Halfway h(4);
  auto& [ddir, jdir, dstore, jstore, donor, now, joiner, staged] = h;
  joiner = std::make_unique<Joiner>(
      Joiner("history", "joiner", 0, {}, Joiner::Options{{}, 16 * 1024}, now, staged));
  joiner->set_target(kKeys, {kOther});  // the first view after the restart: without the donor
  CHECK(!joiner->poll(now));
  now += kDonorGone / 2;
  joiner->set_target(kKeys, {kOther, kDonor});  // the next one has it: resume there
  auto p = joiner->poll(now);
  REQUIRE(p);
  CHECK(p->donor == kDonor);
  CHECK(snapshot_pull(*p).session == staged->header.session);
  joiner->on_reply(p->number, donor.serve(1, p->request, now), now);
  write_all(*joiner, *jstore, now);
  while (!joiner->done()) exchange(*joiner, donor, *jstore, now);
  check_installed(*jstore, *dstore);
}

TEST_CASE(
    "transfer: a snapshot's size estimate - exact behind the cursor, the pages of the tables "
    "ahead and under way") {
  SnapshotChunk h;
  h.total_bytes = 9000;
  SnapshotTally got;
  storage::SnapshotCursor at_start;
  CHECK(estimate_snapshot_bytes(h, at_start, got) == 9000);  // no table sizes: the pages
  h.table_page_bytes = {5000, 2000, 2000};
  CHECK(estimate_snapshot_bytes(h, at_start, got) == 9000);  // nothing seen yet: the pages
  got.bytes = {1200, 0, 0};
  CHECK(estimate_snapshot_bytes(h, storage::SnapshotCursor{0, true, "k"}, got) == 9000);
  got.bytes = {5100, 0, 0};  // more came than the pages said: what came
  CHECK(estimate_snapshot_bytes(h, storage::SnapshotCursor{0, true, "k"}, got) == 9100);
  got.bytes = {3100, 100, 0};
  CHECK(estimate_snapshot_bytes(h, storage::SnapshotCursor{1, true, "k"}, got) ==
        3100 + 2000 + 2000);
  got.bytes = {3100, 200, 80};
  CHECK(estimate_snapshot_bytes(h, storage::SnapshotCursor{storage::kStateTables, false, ""},
                                got) == 3380);  // done: what came
}

TEST_CASE("transfer: a snapshot's progress ends at 100% - also after the joiner restarted") {
  Halfway h(4);
  auto& [ddir, jdir, dstore, jstore, donor, now, joiner, staged] = h;
  const auto first = joiner->progress(now);
  CHECK(first.done < first.total);
  // Restarted from its record: the same progress.
  joiner.reset();
  jstore.reset();
  jstore = open_store(jdir.path());
  joiner = std::make_unique<Joiner>(make_joiner(now, staged_record(*jstore)));
  CHECK(joiner->progress(now).done == first.done);
  CHECK(joiner->progress(now).total == first.total);
  for (;;) {
    auto p = joiner->poll(now);
    REQUIRE(p);
    joiner->on_reply(p->number, donor.serve(1, p->request, now), now);
    const auto pr = joiner->progress(now);
    CHECK(pr.done <= pr.total);
    bool last = false;
    while (auto w = joiner->take_write(now)) {
      if (w->kind == TransferWrite::Kind::install) {
        const auto at_end = joiner->progress(now);
        CHECK(at_end.done == at_end.total);
        last = true;
      }
      PersistResult r = persist(*jstore, "joiner-uuid", PersistBatch{{}, std::nullopt, *w}, false);
      REQUIRE(r.ok);
      joiner->written(r.transferred, now);
    }
    if (last) break;
  }
  check_installed(*jstore, *dstore);
}

TEST_CASE("transfer: while the group is busy a snapshot keeps to its share of the time") {
  using ms = std::chrono::milliseconds;
  TempDir ddir, jdir;
  auto dstore = donor_store(ddir.path());
  auto jstore = open_store(jdir.path());
  Donor donor{*dstore};
  Clock::time_point now{};
  Joiner j("history", "joiner", 0, {}, Joiner::Options{{}, 16 * 1024, kTransferTimeout, 25}, now);
  j.set_target(kKeys, {kDonor});
  exchange(j, donor, *jstore, now);  // the donor's log does not reach back: a snapshot
  j.set_group_busy(true);

  // A pull answered in 10 ms: 30 ms more to wait. Its write takes 20 ms: 60 ms after it.
  auto p = j.poll(now);
  REQUIRE(p);
  now += ms(10);
  j.on_reply(p->number, donor.serve(1, p->request, now), now);
  auto w = j.take_write(now);
  REQUIRE(w);
  PersistResult r = persist(*jstore, "joiner-uuid", PersistBatch{{}, std::nullopt, *w}, false);
  REQUIRE(r.ok);
  now += ms(20);
  j.written(r.transferred, now);
  CHECK(!j.poll(now + ms(59)));
  p = j.poll(now + ms(60));
  REQUIRE(p);
  now += ms(60);

  // An idle group: the next pull goes as soon as the one before is answered.
  j.set_group_busy(false);
  now += ms(10);
  j.on_reply(p->number, donor.serve(1, p->request, now), now);
  write_all(j, *jstore, now + ms(20));
  CHECK(j.poll(now + ms(20)));
}

TEST_CASE("transfer: a donor whose log is short sends the joiner to the others' logs first") {
  Clock::time_point now{};
  Joiner j("history", "joiner", 0, {}, Joiner::Options{{}, 16 * 1024}, now);
  j.set_target(kKeys, {kDonor, kOther});
  const Response short_log{1, TransferReply{LogChunk{false, kKeys, {}}}};
  auto log_pull = [](const Joiner::Pull& p) {
    REQUIRE(std::holds_alternative<LogPull>(p.request.pull));
    return std::get<LogPull>(p.request.pull);
  };
  auto p = j.poll(now);
  REQUIRE(p);
  CHECK(p->donor == kDonor);
  CHECK(log_pull(*p).from == 1);
  j.on_reply(p->number, short_log, now);

  // The other donor's log may reach back (the first one joined by snapshot, say).
  p = j.poll(now);
  REQUIRE(p);
  CHECK(p->donor == kOther);
  CHECK(log_pull(*p).from == 1);
  j.on_reply(p->number, short_log, now);

  // No log reaches back: a snapshot.
  p = j.poll(now);
  REQUIRE(p);
  CHECK(std::holds_alternative<SnapshotPull>(p->request.pull));
}

TEST_CASE("transfer: a donor answers a log pull with what its log holds from the pull's start") {
  TempDir dir;
  auto store = open_store(dir.path());
  // The log holds 5..9 of 9 applied (1..4 trimmed): 1,000 bytes each.
  store->write([](storage::WriteTxn& t) {
    for (uint64_t s = 1; s <= 9; ++s) t.log_append(s, std::string(1000, 'w'));
    t.set_last_committed(9);
  });
  store->write([](storage::WriteTxn& t) { t.log_drop_through(4); });
  REQUIRE(store->read()->meta().log_first == 5);
  Donor donor{*store};
  struct Row {
    const char* what;
    LogPull pull;
    bool covered;
    size_t entries;
  };
  const Row rows[] = {
      {"a start trimmed away", LogPull{1, 9, 1 << 20}, false, 0},
      {"the log's first entry on", LogPull{5, 9, 1 << 20}, true, 5},
      {"up to the pull's end", LogPull{6, 7, 1 << 20}, true, 2},
      {"up to about the pull's bytes", LogPull{5, 9, 2500}, true, 3},
      {"at least one entry", LogPull{5, 9, 1}, true, 1},
      {"past what the donor applied: nothing yet", LogPull{10, 20, 1 << 20}, true, 0},
  };
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  for (const Row& row : rows) {
    INFO(row.what);
    now += std::chrono::seconds(10);  // what the row before served is long past
    const Response r = donor.serve(1, TransferRequest{"history", row.pull, "joiner"}, now);
    const auto* t = std::get_if<TransferReply>(&r.body);
    REQUIRE(t);
    const auto& c = std::get<LogChunk>(t->chunk);
    CHECK(c.covered == row.covered);
    CHECK(c.entries.size() == row.entries);
    CHECK(c.donor_committed == 9);
    // A node is a donor (DONOR in its status) while it sends something, not for a refusal.
    CHECK(donor.active(now) == (row.entries > 0));
  }
}

namespace {

const std::string kThird = "third-uuid-0000";

// Writes after the first snapshot's seqno: inside the part a joiner staged of it (which ends at
// staged_through), at its ends, and beyond it.
uint64_t write_later(storage::Store& s, const std::string& staged_through) {
  uint64_t seqno = s.read()->meta().last_committed;
  s.write([&](storage::WriteTxn& t) {
    t.put("key0", ++seqno, "new, before every staged key");
    t.put("key1", ++seqno, "rewritten: the first staged key");
    t.put("key1000", ++seqno, "rewritten inside the staged part");
    t.put("key1000a", ++seqno, "new inside the staged part");
    t.del("key10");
    t.del(staged_through);
    t.put(staged_through + "a", ++seqno, "new, just past the staged part");
    t.put("key999", ++seqno, "rewritten beyond the staged part");
    t.del("key998");
    t.put("zzz", ++seqno, "new, after every key");
    t.set_last_committed(++seqno);
  });
  return seqno;
}

struct Served {
  size_t kept = 0, sent = 0;  // items, and the bytes of the values of those not kept
};

// Pulls answered by `donor` until the joiner is done (or stop() says so).
void serve_until(
    Joiner& j, Donor& donor, storage::Store& store, const gcs::NodeId& id, Clock::time_point now,
    Served& served, const std::function<bool()>& stop = [] { return false; }) {
  while (!j.done() && !stop()) {
    auto p = j.poll(now);
    REQUIRE(p);
    REQUIRE(p->donor == id);
    Response r = donor.serve(1, p->request, now);
    if (auto* t = std::get_if<TransferReply>(&r.body))
      for (const auto& i : std::get<SnapshotChunk>(t->chunk).items) {
        served.kept += i.kept;
        if (!i.kept) served.sent += i.value.size();
      }
    j.on_reply(p->number, std::move(r), now);
    write_all(j, store, now);
  }
}

}  // namespace

TEST_CASE("transfer: a snapshot whose donor is lost goes on with another, from what is staged") {
  TempDir adir, bdir, cdir, jdir;
  auto astore = donor_store(adir.path());
  auto bstore = donor_store(bdir.path());
  auto cstore = donor_store(cdir.path());
  auto jstore = open_store(jdir.path());
  Donor a{*astore}, b{*bstore}, c{*cstore};
  Clock::time_point now{};
  const bool chained = GENERATE(false, true);
  // Small chunks in the chained case: the other donor's first one ends inside the staged part.
  Joiner j("history", "joiner", 0, {}, Joiner::Options{{}, chained ? 2048u : 16384u}, now);
  j.set_target(kKeys, {kDonor});
  for (int i = 0; i < (chained ? 24 : 6); ++i) exchange(j, a, *jstore, now);
  j.set_target(kKeys, {kDonor, kOther, kThird});
  auto staged = staged_record(*jstore);
  REQUIRE(staged);
  const std::string through = staged->header.cursor.after;
  REQUIRE(through > "key1000a");
  const uint64_t b_seqno = write_later(*bstore, through);

  // The first donor restarted: its session is gone.
  Donor a_again{*astore};
  exchange(j, a_again, *jstore, now);
  now += std::chrono::milliseconds(100);
  Served served;
  if (!chained) {
    serve_until(j, b, *jstore, kOther, now, served);
    CHECK(jstore->read()->meta().last_committed == b_seqno);
    CHECK(jstore->read()->meta().content_hash == bstore->read()->meta().content_hash);
    CHECK_NOTHROW(jstore->verify(true));
    CHECK(jstore->read()->get("key0"));
    CHECK(!jstore->read()->get("key10"));
    CHECK(!jstore->read()->get(through));
    CHECK(jstore->read()->get(through + "a"));
    // What was staged came again as kept entries: their values did not.
    const size_t staged_keys = staged->header.cursor.started ? 100 : 0;
    CHECK(served.kept >= staged_keys);
    CHECK(served.sent < (kKeys - staged_keys) * 400);
    return;
  }
  // The second donor is lost inside the carried part: a third carries it on. Its state is later
  // than the second's: the part the second brought forward is at the second's seqno.
  serve_until(j, b, *jstore, kOther, now, served, [&] { return served.kept > 0; });
  auto midway = staged_record(*jstore);
  REQUIRE(midway);
  REQUIRE(midway->reconcile);
  CHECK(!midway->reconcile->passed(midway->header.cursor));
  write_later(*cstore, through);
  const uint64_t c_seqno = [&] {
    uint64_t seqno = cstore->read()->meta().last_committed;
    cstore->write([&](storage::WriteTxn& t) {
      t.put("key1001", ++seqno, "rewritten after the second donor's snapshot");
      t.del("key1002");
      t.set_last_committed(++seqno);
    });
    return seqno;
  }();
  Donor b_again{*bstore};
  exchange(j, b_again, *jstore, now);
  now += std::chrono::milliseconds(100);

  // A donor behind the part staged from the second refuses to carry it.
  auto p = j.poll(now);
  REQUIRE(p);
  CHECK(p->donor == kThird);
  REQUIRE(snapshot_pull(*p).reconcile);
  CHECK(snapshot_pull(*p).reconcile->since == kKeys);
  CHECK(snapshot_pull(*p).reconcile->newest == b_seqno);
  CHECK(snapshot_pull(*p).reconcile->through.after == through);
  Response behind = Donor{*astore}.serve(1, p->request, now);
  REQUIRE(std::holds_alternative<ErrorReply>(behind.body));
  CHECK_THAT(std::get<ErrorReply>(behind.body).message, Catch::Contains("behind the part"));

  j.on_reply(p->number, c.serve(1, p->request, now), now);
  write_all(j, *jstore, now);
  serve_until(j, c, *jstore, kThird, now, served);
  CHECK(jstore->read()->meta().last_committed == c_seqno);
  CHECK(jstore->read()->meta().content_hash == cstore->read()->meta().content_hash);
  CHECK_NOTHROW(jstore->verify(true));
  CHECK(!jstore->read()->get("key1002"));
}

TEST_CASE(
    "transfer: a snapshot chunk the stage cannot take is refused, and nothing of it written") {
  TempDir dir;
  auto store = open_store(dir.path());
  std::string version(8, '\0');
  version[0] = 3;
  TransferWrite w;
  w.kind = TransferWrite::Kind::stage;
  w.reset = true;
  w.reconcile = storage::Reconcile{5, 5, storage::SnapshotCursor{0, true, "b"}};
  w.items = {storage::TableItem{storage::Table::data, "a", version, true}};  // not staged here
  w.to = storage::SnapshotCursor{0, true, "a"};
  w.resume = SnapshotResume{};
  PersistResult r = persist(*store, "joiner-uuid", PersistBatch{{}, std::nullopt, w}, false);
  CHECK(r.ok);
  CHECK_THAT(r.transfer_rejected, Catch::Contains("does not match"));
  CHECK(!store->read()->meta_get(kMetaSnapshotResume));

  // The joiner starts the snapshot over: nothing carried.
  Clock::time_point now{};
  Joiner j = make_joiner(now);
  j.on_reply(j.poll(now)->number, Response{1, TransferReply{LogChunk{false, kKeys, {}}}}, now);
  j.write_rejected(r.transfer_rejected, now);
  auto p = j.poll(now + kDonorBackoff);
  REQUIRE(p);
  CHECK(snapshot_pull(*p).session == 0);
  CHECK(!snapshot_pull(*p).reconcile);
}

TEST_CASE(
    "transfer: a donor lost past the data table: all of the data is carried, the rest again") {
  TempDir adir, bdir, jdir;
  auto astore = donor_store(adir.path());
  auto bstore = donor_store(bdir.path());
  for (auto* s : {astore.get(), bstore.get()})
    s->write([](storage::WriteTxn& t) {
      for (uint64_t i = 1; i <= kKeys; ++i)
        t.record_txn("txn" + std::to_string(i), i, std::string(200, 'o'));
    });
  auto jstore = open_store(jdir.path());
  Donor a{*astore}, b{*bstore};
  Clock::time_point now{};
  Joiner j("history", "joiner", 0, {}, Joiner::Options{{}, 16384u}, now);
  j.set_target(kKeys, {kDonor});
  for (int i = 0; i < 200; ++i) {
    exchange(j, a, *jstore, now);
    auto staged = staged_record(*jstore);
    if (staged && staged->header.cursor.table >= 1) break;
  }
  auto staged = staged_record(*jstore);
  REQUIRE(staged);
  REQUIRE(staged->header.cursor.table == 1);
  j.set_target(kKeys, {kDonor, kOther});
  const uint64_t b_seqno = write_later(*bstore, "key1500");
  bstore->write([](storage::WriteTxn& t) { t.record_txn("later", kKeys + 20, "o"); });

  Donor a_again{*astore};
  exchange(j, a_again, *jstore, now);
  now += std::chrono::milliseconds(100);
  auto p = j.poll(now);
  REQUIRE(p);
  REQUIRE(snapshot_pull(*p).reconcile);
  CHECK(snapshot_pull(*p).reconcile->through.table == 1);  // all of the data
  Response first = b.serve(1, p->request, now);
  Served served;
  for (const auto& i : std::get<SnapshotChunk>(std::get<TransferReply>(first.body).chunk).items)
    served.kept += i.kept;
  j.on_reply(p->number, std::move(first), now);
  write_all(j, *jstore, now);
  serve_until(j, b, *jstore, kOther, now, served);
  CHECK(served.kept > kKeys - 20);
  CHECK(jstore->read()->meta().last_committed == b_seqno);
  CHECK(jstore->read()->meta().content_hash == bstore->read()->meta().content_hash);
  CHECK_NOTHROW(jstore->verify(true));
  CHECK(jstore->read()->txn_records("txn7").size() == 1);
  CHECK(jstore->read()->txn_records("later").size() == 1);
  CHECK(!jstore->read()->get("key1500"));
}
