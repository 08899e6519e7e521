// The node's parts on their own: flow control's rule, the marked reads' queue, the checks of a
// request.
#include <catch2/catch.hpp>

#include "core/admission.hpp"
#include "core/flow_control.hpp"
#include "core/marked_reads.hpp"

using namespace tutti::core;
using std::chrono::milliseconds;

TEST_CASE("flow control: a backlog or a slow write with one pauses - quiet for as long releases") {
  NodeLimits limits;
  limits.flow_pause_backlog = 100;
  limits.flow_pause_write_time = milliseconds(500);
  using C = FlowControl::Change;
  struct Step {
    const char* what;
    int at_ms;
    size_t backlog;
    int write_ms;
    C change;
  };
  const Step steps[] = {
      {"a fast small batch", 0, 10, 5, C::none},
      {"a slow write with nothing waiting", 10, 0, 900, C::none},
      {"more waiting than the bound", 20, 101, 5, C::pause},
      {"still paused: no second pause", 30, 150, 5, C::none},
      {"quiet, but not for long enough", 400, 0, 5, C::none},
      {"quiet for the bound", 600, 0, 5, C::resume},
      {"a slow write that write-sets waited for", 700, 1, 900, C::pause},
      {"quiet for less than the slow write took", 1400, 0, 5, C::none},
      {"quiet for as long as it took", 1600, 0, 5, C::resume},
  };
  FlowControl flow(limits);
  for (const Step& s : steps) {
    INFO(s.what);
    CHECK(flow.after_batch(s.backlog, milliseconds(s.write_ms),
                           tutti::storage::Clock::time_point(milliseconds(s.at_ms))) == s.change);
  }
}

TEST_CASE("marked reads: one marker at a time, later reads wait for the next") {
  MarkedReads reads;
  int answered = 0;
  auto read = [&] { return MarkedReads::Read{Request{}, [&](Response) { ++answered; }}; };
  CHECK_FALSE(reads.wants_marker());
  reads.add(read());
  reads.add(read());
  REQUIRE(reads.wants_marker());
  const std::string first = reads.next_marker_id();
  reads.sent();
  reads.add(read());  // arrives while the first marker is out
  CHECK_FALSE(reads.wants_marker());
  CHECK(reads.applied("marker-of-someone-else").empty());
  CHECK(reads.applied(first).size() == 2);
  REQUIRE(reads.wants_marker());
  CHECK(reads.next_marker_id() != first);
  reads.sent();
  CHECK(reads.take_all().size() == 1);
  CHECK(reads.size() == 0);
  CHECK_FALSE(reads.wants_marker());
}

TEST_CASE("a commit's checks: each refusal says why") {
  NodeLimits limits;
  limits.max_key_bytes = 4;
  limits.max_value_bytes = 3;
  limits.max_txn_id_bytes = 5;
  struct Case {
    CommitRequest req;
    const char* says;  // nullptr: taken
  };
  const Case cases[] = {
      {{"t", {}, {{"k", "v"}}}, nullptr},
      {{"", {}, {{"k", "v"}}}, "without a transaction id"},
      {{"toolong", {}, {{"k", "v"}}}, "transaction id over 5 bytes"},
      {{"t", {}, {}}, "empty transaction"},
      {{"t", {{"", 0}}, {}}, "empty key"},
      {{"t", {}, {{"kkkkk", "v"}}}, "key of 5 bytes is over the limit of 4"},
      {{"t", {}, {{"k", "vvvv"}}}, "value of 4 bytes for key k"},
      {{"t", {}, {{"k", "1"}, {"k", std::nullopt}}}, "key k is written twice"},
      {{"t", {{"k", 3}}, {{"k", std::nullopt}}}, nullptr},
  };
  for (const Case& c : cases) {
    auto refused = check_commit(c.req, limits);
    if (!c.says) {
      CHECK_FALSE(refused);
      continue;
    }
    REQUIRE(refused);
    CHECK_THAT(refused->message, Catch::Contains(c.says));
  }
}
