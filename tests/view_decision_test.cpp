// The view decision's quorum rules, table by table: reports in, the view to install out.
#include <catch2/catch.hpp>

#include "gcs/view_decision.hpp"

using namespace tutti::gcs;

namespace {

ViewInfo view(uint64_t epoch, std::vector<NodeId> members, uint64_t base = 0) {
  return ViewInfo{ViewKey{epoch, members.front()}, members, true, base, {}};
}

// A member that persisted and saw committed `lp` (its installs: those views), holding up to held.
StateReport in(const ViewInfo& lp, uint64_t held, std::vector<ViewInfo> installs = {}) {
  StateReport r;
  r.last_primary = lp;
  r.last_committed = lp;
  if (installs.empty()) installs = {lp};
  for (const auto& v : installs) r.installs.push_back(v.id);
  r.lineage_held = held;
  r.delivered = held;
  return r;
}

const ViewInfo kABC = view(1, {"a", "b", "c"});
// a, b and c, with three newcomers that never finished their transfer: learners, no votes.
const ViewInfo kABCxyz = [] {
  ViewInfo v = view(2, {"a", "b", "c", "x", "y", "z"}, 10);
  v.learners = {"x", "y", "z"};
  return v;
}();

struct Case {
  const char* name;
  Reports reports;
  Weights weights;
  bool persist_before_ack;
  bool primary;
  uint64_t base;
  std::vector<NodeId> joiners;
};

}  // namespace

TEST_CASE("view decision: primary iff a majority of the lineage continues it") {
  StateReport fresh;  // a new member: no history at all
  StateReport waiting = in(kABC, 4);
  waiting.needs_transfer = true;  // its log has a gap below: it proves nothing
  StateReport restarted_a = in(kABC, 10), restarted_b = in(kABC, 9);
  restarted_a.restarted = restarted_b.restarted = true;
  // b persisted the install of 2.a but c, a member of it, never did: it never committed.
  const ViewInfo kAB2 = view(2, {"a", "b", "c"}, 10);
  StateReport b_saw_2 = in(kABC, 12, {kABC, kAB2});
  b_saw_2.last_primary = kAB2;
  b_saw_2.previous_primary = kABC;
  // The group went on from 1.a as 3.a of {a, d, e} and committed it; b and c only know 1.a.
  const ViewInfo kADE = view(3, {"a", "d", "e"}, 10);

  // Seed 92 of tutti-sim: n1 alone (1.a') bootstrapped; its install of 2 with all five reached
  // n3, n4 and n5 only. Meanwhile n1 went on with n2 beside it, from 1. Those three know of no
  // commit: alone they must not form a primary, with n1 they may.
  const ViewInfo kSolo = view(1, {"n1"});
  const ViewInfo kAll5 = view(2, {"n1", "n2", "n3", "n4", "n5"});
  StateReport installed_2;
  installed_2.last_primary = kAll5;
  installed_2.previous_primary = kSolo;
  installed_2.installs = {kAll5.id};
  StateReport n1_knows = in(kSolo, 0, {kSolo, kAll5});
  n1_knows.last_primary = kAll5;
  n1_knows.previous_primary = kSolo;

  // x finished its transfer in kABCxyz (awaiting its vote); delivery did not wait for its acks.
  StateReport x_behind = in(kABCxyz, 11), x_logged = in(kABCxyz, 12);
  x_logged.delivered = 11;  // its log holds 12: it delivers it entering the view

  const std::vector<Case> cases = {
      {"an install known to no one as committed needs a majority of what it was built on",
       {{"n3", installed_2}, {"n4", installed_2}, {"n5", installed_2}},
       {},
       true,
       false,
       0,
       {}},
      {"... which the member that committed it brings",
       {{"n1", n1_knows}, {"n3", installed_2}, {"n4", installed_2}},
       {},
       true,
       true,
       0,
       {}},
      {"all of the lineage",
       {{"a", in(kABC, 10)}, {"b", in(kABC, 10)}, {"c", in(kABC, 10)}},
       {},
       true,
       true,
       10,
       {}},
      {"two of three: the base is the least held",
       {{"a", in(kABC, 10)}, {"b", in(kABC, 7)}},
       {},
       true,
       true,
       7,
       {}},
      {"one of three", {{"a", in(kABC, 10)}}, {}, true, false, 0, {}},
      {"one of three weighing 3 of 5", {{"a", in(kABC, 10)}}, {{"a", 3}}, true, true, 10, {}},
      {"one of three weighing 2 of 4: no strict majority",
       {{"a", in(kABC, 10)}},
       {{"a", 2}},
       true,
       false,
       0,
       {}},
      {"a newcomer joins and needs a transfer",
       {{"a", in(kABC, 10)}, {"b", in(kABC, 10)}, {"d", fresh}},
       {},
       true,
       true,
       10,
       {"d"}},
      {"a member waiting for its transfer is no continuer",
       {{"a", in(kABC, 10)}, {"b", in(kABC, 10)}, {"c", waiting}},
       {},
       true,
       true,
       10,
       {"c"}},
      {"only members waiting for a transfer: no one continues",
       {{"a", waiting}, {"b", waiting}},
       {},
       true,
       false,
       0,
       {}},
      {"newcomers alone have no lineage", {{"d", fresh}, {"e", fresh}}, {}, true, false, 0, {}},
      // The field report: three joiners that could never catch up came and were killed; they
      // had no vote, so the three that hold the state are still all of the voters.
      {"learners that are gone take no majority away",
       {{"a", in(kABCxyz, 12)}, {"b", in(kABCxyz, 12)}, {"c", in(kABCxyz, 12)}},
       {},
       true,
       true,
       12,
       {}},
      {"learners lend no majority to a minority of the voters",
       {{"a", in(kABCxyz, 12)}, {"x", waiting}, {"y", waiting}, {"z", waiting}},
       {},
       true,
       false,
       0,
       {}},
      {"a majority of the voters takes its learners along: still learners",
       {{"a", in(kABCxyz, 12)}, {"b", in(kABCxyz, 12)}, {"x", waiting}},
       {},
       true,
       true,
       12,
       {"x"}},
      {"a caught-up learner behind the voters lowers no base: it catches up again",
       {{"a", in(kABCxyz, 12)}, {"b", in(kABCxyz, 12)}, {"x", x_behind}},
       {},
       true,
       true,
       12,
       {"x"}},
      {"a caught-up learner whose log reaches the base continues, and votes",
       {{"a", in(kABCxyz, 12)}, {"b", in(kABCxyz, 12)}, {"x", x_logged}},
       {},
       true,
       true,
       12,
       {}},
      // b falls back to 1.a, which it holds (its tail beyond 10 is dropped): no transfer.
      {"an install that never committed is no lineage",
       {{"a", in(kABC, 10)}, {"b", b_saw_2}, {"c", in(kABC, 10)}},
       {},
       true,
       true,
       10,
       {}},
      {"a stale majority of an old view is not a majority of the last committed one",
       {{"a", in(kADE, 10)}, {"b", in(kABC, 10)}, {"c", in(kABC, 10)}},
       {},
       true,
       false,
       0,
       {}},
      {"memory durability: after a crash of every member, all of it must be back",
       {{"a", restarted_a}, {"b", restarted_b}},
       {},
       false,
       false,
       0,
       {}},
      {"memory durability: all of it back, the base is the least held",
       {{"a", restarted_a}, {"b", restarted_b}, {"c", restarted_b}},
       {},
       false,
       true,
       9,
       {}},
      {"memory durability: a member that kept its memory continues alone",
       {{"a", in(kABC, 10)}, {"b", restarted_b}},
       {},
       false,
       true,
       10,
       {"b"}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    std::vector<NodeId> members;
    for (const auto& [n, r] : c.reports) members.push_back(n);
    const ViewKey id{9, members.front()};
    const ViewDecision d = decide_view(id, members, c.reports, c.weights, c.persist_before_ack);
    INFO(d.text);
    CHECK(d.install.view.id == id);
    CHECK(d.install.view.members == members);
    CHECK(d.install.view.primary == c.primary);
    CHECK(d.install.view.base == c.base);
    CHECK(d.install.joiners == c.joiners);
    CHECK(d.install.view.learners == c.joiners);  // who joins has no vote in the view
    CHECK(d.install.delivered.size() == c.reports.size());
    if (c.primary) CHECK(d.install.predecessor.has_value());
  }
}

TEST_CASE("view decision: the lineage is the latest primary view that may have committed") {
  const ViewInfo kAB2 = view(2, {"a", "b"}, 10);
  // Both persisted 2.a: it may have committed, and is the lineage.
  Reports both{{"a", in(kAB2, 12, {kABC, kAB2})}, {"b", in(kAB2, 12, {kABC, kAB2})}};
  const Lineage l = choose_lineage(both);
  REQUIRE(l.lp);
  CHECK(l.lp->id == kAB2.id);
  CHECK(maybe_committed(both, kAB2));
  // A present member of it never persisted its install: it did not commit.
  Reports one{{"a", in(kABC, 10)}, {"b", in(kABC, 10)}};
  one["a"].last_primary = kAB2;
  one["a"].previous_primary = kABC;
  one["a"].installs.push_back(kAB2.id);
  CHECK_FALSE(maybe_committed(one, kAB2));
  CHECK(choose_lineage(one).lp->id == kABC.id);
  CHECK(majority_of(one, kABC, {}));                // two of a, b, c
  CHECK_FALSE(majority_of(one, kABC, {{"c", 3}}));  // 2 of 5 by weight
}
