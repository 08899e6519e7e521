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
  TransferRequest req{
      "history",
      SnapshotPull{staged->header.session, staged->header.cursor, 1024, staged->header.seqno},
      "someone-else"};
  CHECK(std::holds_alternative<ErrorReply>(donor->serve(2, req, now).body));
  req.joiner = "joiner";
  std::get<SnapshotPull>(req.pull).seqno = kKeys - 1;
  CHECK(std::holds_alternative<ErrorReply>(donor->serve(3, req, now).body));
  std::get<SnapshotPull>(req.pull).seqno = kKeys;
  CHECK(std::holds_alternative<TransferReply>(donor->serve(4, req, now).body));

  SECTION("the donor restarted: refused, and the snapshot starts over from the start") {
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
