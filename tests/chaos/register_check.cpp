// The register checker (checks.hpp): for each key, a search for an order of its operations that
// respects real time (an operation that returned before another was invoked comes first) in
// which every operation is what a single register would have done - Wing and Gong's algorithm,
// with Lowe's memo of (operations placed, register value) that makes it fast in practice.
#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "chaos/checks.hpp"

namespace tutti::chaos {
namespace {

using Kind = RegisterOp::Kind;

// Whether op can take effect on a register holding value; if so, what it holds after.
bool step(const RegisterOp& op, Value& value) {
  switch (op.kind) {
    case Kind::read:
      return value == op.value;
    case Kind::write:
      value = op.value;
      return true;
    case Kind::cas:
      if (op.outcome == Outcome::failed) return value != op.expected;
      if (value != op.expected) return false;
      value = op.value;
      return true;
  }
  return false;
}

// The operations that constrain the history: an unknown write or cas whose value nobody saw may
// not have happened at all, and leaving it out admits every history that it could explain.
std::vector<RegisterOp> constraining(std::vector<RegisterOp> ops) {
  std::set<Value> seen;
  for (const auto& op : ops) {
    if (op.kind == Kind::read) seen.insert(op.value);
    if (op.kind == Kind::cas && op.outcome == Outcome::ok) seen.insert(op.expected);
  }
  std::erase_if(ops, [&](const RegisterOp& op) {
    return op.outcome == Outcome::unknown && !seen.count(op.value);
  });
  for (auto& op : ops)
    if (op.outcome == Outcome::unknown) {
      op.outcome = Outcome::ok;  // it took effect, some time after its invocation
      op.returned = std::numeric_limits<double>::infinity();
    }
  return ops;
}

struct Memo {
  std::vector<uint64_t> placed;
  Value value;
  bool operator==(const Memo&) const = default;
};
struct MemoHash {
  size_t operator()(const Memo& m) const {
    uint64_t h = m.value * 0x9e3779b97f4a7c15ull;
    for (uint64_t w : m.placed) h = (h ^ w) * 0x100000001b3ull + (h >> 29);
    return static_cast<size_t>(h);
  }
};

enum class Verdict { linearizable, not_linearizable, undecided };

// REQUIRES: every op is of one key, of outcome ok or failed (constraining() done).
Verdict linearizable(const std::vector<RegisterOp>& ops, uint64_t max_steps) {
  // Calls and returns in time order, a call before a return at the same instant (so that two
  // such operations count as concurrent: the lenient reading), in a list with a head.
  struct Event {
    size_t op;
    bool call;
    double time;
    size_t prev = 0, next = 0, match = 0;
  };
  std::vector<Event> ev(1, Event{0, false, 0});  // [0]: the head
  for (size_t i = 0; i < ops.size(); ++i) {
    ev.push_back(Event{i, true, ops[i].invoked});
    ev.push_back(Event{i, false, ops[i].returned});
  }
  std::vector<size_t> order(ev.size() - 1);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i + 1;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return ev[a].time != ev[b].time ? ev[a].time < ev[b].time : ev[a].call && !ev[b].call;
  });
  constexpr size_t none = SIZE_MAX;
  size_t prev = 0;
  for (size_t e : order) {
    ev[prev].next = e;
    ev[e].prev = prev;
    prev = e;
  }
  ev[prev].next = none;
  for (size_t i = 0; i < ops.size(); ++i) {
    ev[1 + 2 * i].match = 2 + 2 * i;
    ev[2 + 2 * i].match = 1 + 2 * i;
  }
  const auto lift = [&](size_t e) {
    ev[ev[e].prev].next = ev[e].next;
    ev[ev[e].next].prev = ev[e].prev;  // a call is never last: its return follows
    const size_t m = ev[e].match;
    ev[ev[m].prev].next = ev[m].next;
    if (ev[m].next != none) ev[ev[m].next].prev = ev[m].prev;
  };
  const auto unlift = [&](size_t e) {
    const size_t m = ev[e].match;
    ev[ev[m].prev].next = m;
    if (ev[m].next != none) ev[ev[m].next].prev = m;
    ev[ev[e].prev].next = e;
    ev[ev[e].next].prev = e;
  };
  Memo state{std::vector<uint64_t>((ops.size() + 63) / 64, 0), 0};
  std::unordered_set<Memo, MemoHash> memo;
  std::vector<std::pair<size_t, Value>> placed;  // call event, the value before it
  size_t e = ev[0].next;
  for (uint64_t steps = 0; ev[0].next != none; ++steps) {
    if (steps >= max_steps) return Verdict::undecided;
    if (ev[e].call) {
      const size_t op = ev[e].op;
      Value after = state.value;
      if (step(ops[op], after)) {
        Memo next = state;
        next.placed[op / 64] |= uint64_t{1} << (op % 64);
        next.value = after;
        if (memo.insert(next).second) {
          placed.emplace_back(e, state.value);
          state = std::move(next);
          lift(e);
          e = ev[0].next;
          continue;
        }
      }
      e = ev[e].next;
    } else {  // a return whose call is not placed: undo the last placement and try further on
      if (placed.empty()) return Verdict::not_linearizable;
      const auto [call, value] = placed.back();
      placed.pop_back();
      state.value = value;
      state.placed[ev[call].op / 64] &= ~(uint64_t{1} << (ev[call].op % 64));
      unlift(call);
      e = ev[call].next;
    }
  }
  return Verdict::linearizable;
}

}  // namespace

RegisterCheck check_registers(const std::vector<RegisterOp>& ops, uint64_t max_steps) {
  std::map<std::string, std::vector<RegisterOp>> by_key;
  for (const auto& op : ops) by_key[op.key].push_back(op);
  RegisterCheck out;
  for (auto& [key, history] : by_key) {
    ++out.keys;
    out.ops += history.size();
    const auto kept = constraining(std::move(history));
    switch (linearizable(kept, max_steps)) {
      case Verdict::linearizable:
        break;
      case Verdict::not_linearizable:
        out.violations.push_back(fmt::format(
            "registers: no order of {}'s {} operations that respects real time explains what "
            "they returned (not linearizable)",
            key, kept.size()));
        break;
      case Verdict::undecided:
        out.undecided.push_back(key);
        break;
    }
  }
  return out;
}

}  // namespace tutti::chaos
