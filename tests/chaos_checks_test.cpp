// The history checkers of tutti-chaos: histories a serializable (or linearizable) store can
// produce must pass, and each anomaly must be named.
#include <catch2/catch.hpp>

#include "chaos/checks.hpp"

using namespace tutti::chaos;
using Ends = std::map<std::string, std::vector<Element>>;

namespace {

ListTxn txn(std::string id, Outcome o, std::vector<ListRead> reads,
            std::vector<ListAppend> appends = {}) {
  return ListTxn{std::move(id), o, false, false, std::move(reads), std::move(appends)};
}
ListTxn scan(std::string id, std::vector<ListRead> reads) {
  return ListTxn{std::move(id), Outcome::ok, true, false, std::move(reads), {}};
}

// Whether some violation mentions `what`.
bool names(const std::vector<std::string>& violations, const std::string& what) {
  for (const auto& v : violations)
    if (v.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("list-append check: serializable histories pass", "[chaos]") {
  const std::vector<ListTxn> h = {
      txn("t1", Outcome::ok, {{"x", {}}}, {{"x", {1}}}),
      txn("t2", Outcome::ok, {{"x", {1}}, {"y", {}}}, {{"x", {2, 3}}}),
      scan("s1", {{"x", {1, 2, 3}}, {"y", {}}}),
      txn("t3", Outcome::unknown, {{"y", {}}}, {{"y", {4}}}),   // took effect
      txn("t4", Outcome::unknown, {{"y", {4}}}, {{"y", {5}}}),  // did not
      txn("t5", Outcome::failed, {{"y", {4}}}, {{"y", {6}}}),
      txn("t6", Outcome::failed, {{"x", {1}}}),  // its reads alone: a prefix
  };
  CHECK(check_list_append(h, Ends{{"x", {1, 2, 3}}, {"y", {4}}}).empty());
}

TEST_CASE("list-append check: each anomaly is named", "[chaos]") {
  SECTION("an acknowledged append missing at the end") {
    auto v = check_list_append({txn("t1", Outcome::ok, {{"x", {}}}, {{"x", {1}}})}, Ends{});
    CHECK(names(v, "t1 was acknowledged, but 1 it appended to x is not there"));
  }
  SECTION("two appends that read the same list (lost update, a cycle)") {
    auto v = check_list_append({txn("t1", Outcome::ok, {{"x", {}}}, {{"x", {1}}}),
                                txn("t2", Outcome::ok, {{"x", {}}}, {{"x", {2}}})},
                               Ends{{"x", {1, 2}}});
    CHECK(names(v, "t2 read 0 elements of x and appended 2, which is at position 1"));
    CHECK(names(v, "dependency cycle among 2"));
  }
  SECTION("write skew: no lost update, only the cycle shows it") {
    auto v = check_list_append({txn("t1", Outcome::ok, {{"x", {}}, {"y", {}}}, {{"x", {1}}}),
                                txn("t2", Outcome::ok, {{"x", {}}, {"y", {}}}, {{"y", {2}}})},
                               Ends{{"x", {1}}, {"y", {2}}});
    REQUIRE(v.size() == 1);
    CHECK(names(v, "dependency cycle among 2 committed transactions"));
    CHECK(names(v, "-rw"));
  }
  SECTION("a scan that is not one snapshot") {
    auto v =
        check_list_append({txn("t1", Outcome::ok, {{"x", {}}, {"y", {}}}, {{"x", {1}}, {"y", {2}}}),
                           scan("s1", {{"x", {1}}, {"y", {}}})},
                          Ends{{"x", {1}}, {"y", {2}}});
    CHECK(names(v, "dependency cycle"));
  }
  SECTION("a read of a failed transaction's element (aborted read)") {
    auto v = check_list_append({txn("t1", Outcome::failed, {{"x", {}}}, {{"x", {1}}}),
                                txn("t2", Outcome::failed, {{"x", {1}}})},
                               Ends{});
    CHECK(names(v, "t2 read 1 in x, appended by t1, which failed (aborted read)"));
    CHECK(names(v, "not a prefix"));
  }
  SECTION("a failed transaction's element at the end") {
    auto v = check_list_append({txn("t1", Outcome::failed, {{"x", {}}}, {{"x", {1}}})},
                               Ends{{"x", {1}}});
    CHECK(names(v, "x holds 1 at the end, appended by t1, which failed"));
  }
  SECTION("a read in the middle of one append (intermediate read)") {
    auto v = check_list_append({txn("t1", Outcome::ok, {{"x", {}}}, {{"x", {1, 2}}}),
                                txn("t2", Outcome::failed, {{"x", {1}}})},
                               Ends{{"x", {1, 2}}});
    CHECK(names(v, "intermediate read"));
  }
  SECTION("a transaction of unknown outcome in part") {
    auto v = check_list_append(
        {txn("t1", Outcome::unknown, {{"x", {}}, {"y", {}}}, {{"x", {1}}, {"y", {2}}})},
        Ends{{"x", {1}}, {"y", {}}});
    CHECK(names(v, "t1 (outcome unknown) is at the end only in part"));
  }
  SECTION("an element nobody appended, or twice") {
    auto v = check_list_append({}, Ends{{"x", {7, 7}}});
    CHECK(names(v, "x holds 7 at the end, which no transaction appended"));
    CHECK(names(v, "x holds 7 twice"));
  }
  SECTION("an append split apart at the end") {
    auto v = check_list_append({txn("t1", Outcome::ok, {{"x", {}}}, {{"x", {1, 2}}}),
                                txn("t2", Outcome::ok, {{"x", {1}}}, {{"x", {3}}})},
                               Ends{{"x", {1, 3, 2}}});
    CHECK(names(v, "t1's append of [1 2] to x is not together"));
  }
}

namespace {

RegisterOp reads(Value v, double from, double to) {
  return RegisterOp{"r", RegisterOp::Kind::read, v, 0, Outcome::ok, from, to};
}
RegisterOp writes(Value v, double from, double to, Outcome o = Outcome::ok) {
  return RegisterOp{"r", RegisterOp::Kind::write, v, 0, o, from, to};
}
RegisterOp cas_from(Value from_value, Value v, double from, double to, Outcome o = Outcome::ok) {
  return RegisterOp{"r", RegisterOp::Kind::cas, v, from_value, o, from, to};
}
constexpr double never = std::numeric_limits<double>::infinity();

bool linearizable(std::vector<RegisterOp> ops) {
  auto c = check_registers(ops);
  REQUIRE(c.undecided.empty());
  return c.violations.empty();
}

}  // namespace

TEST_CASE("register check: linearizable histories pass, others do not", "[chaos]") {
  // One after another.
  CHECK(linearizable({reads(0, 0, 1), writes(1, 2, 3), reads(1, 4, 5), cas_from(1, 2, 6, 7),
                      reads(2, 8, 9), cas_from(1, 3, 10, 11, Outcome::failed), reads(2, 12, 13)}));
  // Concurrent with a write, a read may see either value, but not go back.
  CHECK(linearizable({writes(1, 0, 10), reads(0, 1, 2), reads(1, 3, 4), reads(1, 5, 6)}));
  CHECK_FALSE(linearizable({writes(1, 0, 10), reads(1, 1, 2), reads(0, 3, 4)}));
  // A stale read after the write returned.
  CHECK_FALSE(linearizable({writes(1, 0, 1), writes(2, 2, 3), reads(1, 4, 5)}));
  // A value nobody wrote.
  CHECK_FALSE(linearizable({writes(1, 0, 1), reads(9, 2, 3)}));
  // A refused cas while the register held what it expected, nothing concurrent.
  CHECK_FALSE(linearizable({writes(1, 0, 1), cas_from(1, 2, 2, 3, Outcome::failed)}));
  CHECK(linearizable({writes(1, 0, 1), cas_from(1, 2, 2, 5, Outcome::failed), writes(3, 3, 4)}));
  // Two cas from the same value cannot both succeed.
  CHECK_FALSE(
      linearizable({writes(1, 0, 1), cas_from(1, 2, 2, 5), cas_from(1, 3, 3, 6), reads(2, 7, 8)}));
}

TEST_CASE("register check: operations of unknown outcome", "[chaos]") {
  // Seen: it took effect, after its invocation, however late.
  CHECK(linearizable({writes(1, 0, never, Outcome::unknown), reads(0, 1, 2), reads(1, 50, 51)}));
  // Not seen: perhaps it never happened.
  CHECK(linearizable({writes(1, 0, never, Outcome::unknown), reads(0, 100, 101)}));
  // Seen before it was invoked: impossible.
  CHECK_FALSE(linearizable({reads(1, 0, 1), writes(1, 2, never, Outcome::unknown)}));
  // Once seen, it cannot be undone by the old value coming back.
  CHECK_FALSE(linearizable({writes(1, 0, 1), cas_from(1, 2, 2, never, Outcome::unknown),
                            reads(2, 3, 4), reads(1, 5, 6)}));
}

TEST_CASE("register check: the search is bounded, and says when it gave up", "[chaos]") {
  std::vector<RegisterOp> ops;
  for (int i = 0; i < 12; ++i) ops.push_back(writes(1 + i, 0, 100));  // all concurrent
  ops.push_back(reads(5, 101, 102));
  auto c = check_registers(ops, 10);
  CHECK(c.undecided == std::vector<std::string>{"r"});
  CHECK(c.violations.empty());
  CHECK(check_registers(ops).violations.empty());
}
