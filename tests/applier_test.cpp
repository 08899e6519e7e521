#include <catch2/catch.hpp>

#include "core/applier.hpp"
#include "core/codec.hpp"
#include "temp_dir.hpp"

using namespace tutti;
using namespace tutti::core;
using tutti::test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::unique_ptr<storage::Store> store;
  uint64_t seqno = 0;

  Fixture() {
    storage::Options o;
    o.dir = dir.path();
    store = storage::Store::open(o);
  }

  Decision deliver(const WriteSet& ws) { return deliver_bytes(encode_writeset(ws)); }
  uint64_t retention = kTxnRetention;

  Decision deliver_bytes(const std::string& payload) {
    Decision d;
    const uint64_t s = ++seqno;
    store->write([&](storage::WriteTxn& t) {
      t.log_append(s, payload);
      d = certify_and_apply(t, s, payload, retention);
    });
    return d;
  }
  std::optional<storage::Versioned> get(const std::string& key) { return store->read()->get(key); }
};

WriteSet put(std::string txn, std::string key, std::string value,
             std::vector<ReadItem> reads = {}) {
  return WriteSet{
      "origin", std::move(txn), std::move(reads), {WriteItem{std::move(key), std::move(value)}}};
}

}  // namespace

TEST_CASE("blind writes always commit - the later seqno wins") {
  Fixture f;
  CHECK(f.deliver(put("t1", "k", "a")).outcome.committed);
  CHECK(f.deliver(put("t2", "k", "b")).outcome.committed);
  CHECK(f.get("k")->value == "b");
  CHECK(f.get("k")->version == 2);
  CHECK(f.store->read()->meta().last_committed == 2);
}

TEST_CASE("a read-set that is still current commits - a stale one conflicts and writes nothing") {
  Fixture f;
  f.deliver(put("t1", "k", "a"));                                // k@1
  auto ok = f.deliver(put("t2", "k", "b", {ReadItem{"k", 1}}));  // k@2
  CHECK(ok.outcome.committed);
  auto stale = f.deliver(put("t3", "k", "c", {ReadItem{"k", 1}}));
  CHECK_FALSE(stale.outcome.committed);
  CHECK(stale.outcome.conflict_keys == std::vector<std::string>{"k"});
  CHECK(f.get("k")->value == "b");
  // The conflicting seqno is still consumed: every node numbers the same.
  CHECK(f.store->read()->meta().last_committed == 3);
}

TEST_CASE("reads of other keys are validated too - the node's own write-sets included") {
  Fixture f;
  f.deliver(put("t1", "balance", "100"));
  f.deliver(put("t2", "balance", "90"));
  // Same origin as every write-set here: certification does not care who sent what.
  auto d = f.deliver(put("t3", "audit", "saw 100", {ReadItem{"balance", 1}}));
  CHECK_FALSE(d.outcome.committed);
  CHECK_FALSE(f.get("audit"));
}

TEST_CASE("absent keys read as version 0 - deletes make a key absent again") {
  Fixture f;
  CHECK(f.deliver(put("t1", "k", "a", {ReadItem{"k", 0}})).outcome.committed);
  CHECK_FALSE(f.deliver(put("t2", "k", "b", {ReadItem{"k", 0}})).outcome.committed);
  auto del = f.deliver(WriteSet{"o", "t3", {ReadItem{"k", 1}}, {WriteItem{"k", std::nullopt}}});
  CHECK(del.outcome.committed);
  CHECK_FALSE(f.get("k"));
  CHECK(f.deliver(put("t4", "k", "c", {ReadItem{"k", 0}})).outcome.committed);
}

TEST_CASE("a retried transaction id returns its recorded outcome and is not applied twice") {
  Fixture f;
  auto first = f.deliver(put("same-id", "k", "a"));
  f.deliver(put("t2", "k", "b"));
  auto retry = f.deliver(put("same-id", "k", "a"));
  CHECK(retry.duplicate);
  CHECK(retry.outcome == first.outcome);
  CHECK(retry.outcome.seqno == 1);
  CHECK(f.get("k")->value == "b");

  auto conflict = f.deliver(put("c-id", "k", "z", {ReadItem{"k", 1}}));
  auto conflict_retry = f.deliver(put("c-id", "k", "z", {ReadItem{"k", 1}}));
  CHECK(conflict_retry.duplicate);
  CHECK_FALSE(conflict_retry.outcome.committed);
  CHECK(conflict_retry.outcome.conflict_keys == conflict.outcome.conflict_keys);
}

TEST_CASE("a malformed delivered write-set is rejected alike everywhere and numbered") {
  Fixture f;
  auto d = f.deliver_bytes("not a write-set!");  // 16 bytes: whole words, bad content
  CHECK_FALSE(d.outcome.committed);
  CHECK_FALSE(d.outcome.rejected.empty());
  auto d2 = f.deliver(put("", "k", "v"));
  CHECK_THAT(d2.outcome.rejected, Catch::Contains("no transaction id"));
  CHECK(f.store->read()->meta().last_committed == 2);
  CHECK(f.deliver(put("t", "k", "v")).outcome.committed);
}

TEST_CASE("two nodes applying the same sequence hold the same data and certification history") {
  Fixture a, b;
  std::vector<WriteSet> seq;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i % 17);
    seq.push_back(put("t" + std::to_string(i), key, "v" + std::to_string(i),
                      {ReadItem{key, static_cast<uint64_t>(i % 5 == 0 ? i : 0)}}));
  }
  std::vector<bool> oa, ob;
  for (const auto& ws : seq) oa.push_back(a.deliver(ws).outcome.committed);
  for (const auto& ws : seq) ob.push_back(b.deliver(ws).outcome.committed);
  CHECK(oa == ob);
  auto ra = a.store->read(), rb = b.store->read();
  CHECK(ra->meta().content_hash == rb->meta().content_hash);
  CHECK(certification_hash(*ra) == certification_hash(*rb));
  CHECK(certification_hash(*ra) != 0);
}

TEST_CASE("a read marker takes its seqno and changes no data") {
  Fixture f;
  f.deliver_bytes(encode_writeset(put("t1", "k", "v")));
  const auto hash = f.store->read()->meta().content_hash;
  WriteSet marker{std::string(16, 'o'), "marker-1", {}, {}, true};
  Decision d;
  f.store->write(
      [&](storage::WriteTxn& t) { d = certify_and_apply(t, 2, encode_writeset(marker)); });
  CHECK(d.marker);
  CHECK(d.outcome.committed);
  auto r = f.store->read();
  CHECK(r->meta().last_committed == 2);
  CHECK(r->meta().content_hash == hash);
  CHECK(r->txn_records("marker-1").empty());
}

TEST_CASE("transaction records are kept for a window of seqnos, the same on every node") {
  Fixture f;
  f.retention = 10;
  for (int i = 1; i <= 30; ++i) f.deliver(put("t" + std::to_string(i), "k", std::to_string(i)));
  auto r = f.store->read();
  // Generations of 10 seqnos: 1-10 were emptied in one step as 21-30 began; 11-20 are kept but
  // no longer count once seqno 31 is applied.
  CHECK(r->txn_records("t1").empty());
  CHECK(r->txn_records("t10").empty());
  CHECK(r->txn_records("t11").size() == 1);
  CHECK_FALSE(counted_record(*r, "t20", 31, 10));
  CHECK(counted_record(*r, "t21", 31, 10));
  CHECK(counted_record(*r, "t30", 31, 10)->seqno == 30);
  r.reset();
  CHECK(f.deliver(put("t25", "k", "again")).duplicate);  // inside the window: answered
  CHECK(f.get("k")->value == "30");
  CHECK_FALSE(f.deliver(put("t15", "k", "afresh")).duplicate);  // past it: certified afresh
  CHECK(f.get("k")->value == "afresh");
  CHECK(f.deliver(put("t15", "k", "again")).duplicate);
}

// Format 2 forgot, as it applied each seqno s, the record made at s - window: a retry counted as
// one within exactly that window. Generations must decide every retry the same way.
TEST_CASE("retries are recognised exactly as when records were forgotten one by one") {
  constexpr uint64_t kWindow = 10;
  Fixture f;
  f.retention = kWindow;
  std::map<std::string, uint64_t> recorded;  // the model: id -> seqno of its record
  const uint64_t distances[] = {0, 9, 10, 11, 3, 20, 10, 0, 19, 1};
  for (uint64_t s = 1; s <= 75; ++s) {
    const uint64_t back = distances[s % 10];
    const std::string id = "t" + std::to_string(back >= s ? s : s - back);  // a retry when back
    auto r = recorded.find(id);
    const bool expect = r != recorded.end() && (s <= kWindow + 1 || r->second >= s - kWindow);
    INFO("seqno " << s << ", " << id);
    const Decision d = f.deliver(put(id, "k", std::to_string(s)));
    CHECK(d.duplicate == expect);
    if (!expect) recorded[id] = s;
  }
  CHECK(recorded.size() > 40);
}

TEST_CASE("a write-set the store cannot hold is rejected alike everywhere - never applied") {
  Fixture a, b;
  const std::string long_key(storage::kMaxKeyBytes + 1, 'k');
  const std::string longest(storage::kMaxKeyBytes, 'k');
  std::vector<WriteSet> poison = {
      WriteSet{"o", "t1", {}, {WriteItem{"ok", "v"}, WriteItem{long_key, "v"}}},
      WriteSet{"o", "t2", {ReadItem{long_key, 0}}, {WriteItem{"ok", "v"}}},
      WriteSet{"o", std::string(storage::kMaxKeyBytes + 1, 't'), {}, {WriteItem{"ok", "v"}}},
      WriteSet{"o", "t4", {}, {WriteItem{"", "v"}}},
      WriteSet{"o", "t5", {}, {WriteItem{long_key, std::nullopt}}},
  };
  for (const auto& ws : poison) {
    Decision da, db;
    REQUIRE_NOTHROW(da = a.deliver(ws));
    REQUIRE_NOTHROW(db = b.deliver(ws));
    CHECK_FALSE(da.outcome.committed);
    CHECK_THAT(da.outcome.rejected, Catch::Contains("limit") || Catch::Contains("empty key"));
    CHECK(da.outcome == db.outcome);
  }
  CHECK_FALSE(a.get("ok"));  // nothing of a rejected write-set is applied
  CHECK(a.store->read()->meta().last_committed == poison.size());
  CHECK(certification_hash(*a.store->read()) == certification_hash(*b.store->read()));
  // The longest key the store holds commits, and the node goes on.
  CHECK(a.deliver(put("t6", longest, "v")).outcome.committed);
  CHECK(a.get(longest)->value == "v");
}
