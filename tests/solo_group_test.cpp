#include <catch2/catch.hpp>

#include "gcs/solo_group.hpp"

using namespace tutti::gcs;

TEST_CASE("a group of one is primary and numbers messages after the persisted history") {
  SoloGroup g(MemberInfo{"uuid-1", "n1"}, 41);
  CHECK(g.view().primary);
  CHECK(g.view().members.size() == 1);
  REQUIRE(g.has_ready());  // the first Ready announces the view
  auto r0 = g.ready();
  CHECK(r0.view.has_value());
  g.advance(r0, true);
  CHECK_FALSE(g.has_ready());

  CHECK(g.broadcast("a").ok());
  CHECK(g.broadcast("b").ok());
  auto r = g.ready();
  REQUIRE(r.persist.size() == 2);
  CHECK(r.persist[0].seqno == 42);
  CHECK(r.persist[1].seqno == 43);
  CHECK(r.deliver.size() == 2);
  CHECK(r.deliver[0].origin == "uuid-1");
  CHECK_FALSE(r.view.has_value());
  g.advance(r, true);
  CHECK(g.last_seqno() == 43);
}

TEST_CASE("a batch that could not be persisted is not delivered and its seqnos are reused") {
  SoloGroup g(MemberInfo{"u", "n"}, 0);
  g.advance(g.ready(), true);
  g.broadcast("lost");
  auto r = g.ready();
  CHECK(r.persist.front().seqno == 1);
  g.advance(r, false);
  CHECK(g.last_seqno() == 0);
  g.broadcast("next");
  CHECK(g.ready().persist.front().seqno == 1);
}

TEST_CASE("broadcast refuses oversized messages and a full queue with a reason") {
  Limits limits;
  limits.max_message_bytes = 10;
  limits.max_queued_messages = 2;
  SoloGroup g(MemberInfo{"u", "n"}, 0, limits);
  auto big = g.broadcast(std::string(11, 'x'));
  CHECK(big.error == BroadcastError::too_large);
  CHECK_THAT(big.message, Catch::Contains("over the group's limit"));
  CHECK(g.broadcast("1").ok());
  CHECK(g.broadcast("2").ok());
  CHECK(g.broadcast("3").error == BroadcastError::queue_full);
}
