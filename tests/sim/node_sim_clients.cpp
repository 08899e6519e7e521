// The simulated clients: a bank (transfers between accounts, validated by their read-sets, and
// reads of every account, whose sum never changes) and blind puts, through random nodes. A client
// whose answer is lost or late asks again, maybe another node, with the same transaction id.
#include <fmt/format.h>

#include "sim/node_sim.hpp"

namespace tutti::sim {
namespace {

constexpr int kAccounts = 8;
constexpr int64_t kBalance = 100;
constexpr Time kAnswerTimeout = 2000;
constexpr int kMaxTries = 30;
const std::string kAccountPrefix = "acct/";

std::string account(int i) {
  return kAccountPrefix + std::to_string(i);
}

}  // namespace

void NodeCluster::client_step(Client& c, bool start_new) {
  if (c.op == Client::Op::none) {
    if (start_new && now_ >= c.wake && chance(0.5)) start_op(c);
    return;
  }
  if (now_ < c.wake) return;
  // No answer in time: ask again. A commit keeps its transaction id, so it is applied at most
  // once whichever of its tries is ordered; the first answer to any try counts.
  if (++c.tries > kMaxTries && c.op != Client::Op::init) {
    trace("client", "\"event\":\"give-up\"", fmt::format("client {} gives up", c.index));
    c.op = Client::Op::none;
    return;
  }
  send_request(c);
}

void NodeCluster::start_op(Client& c) {
  c.tries = 0;
  ++c.op_id;
  const std::string txn = fmt::format("c{}-{}", c.index, ++c.next);
  if (c.index == 0 && c.next == 1) {  // the bank opens: every account at once, or none
    core::CommitRequest open{"bank-open", {}, {}};
    for (int i = 0; i < kAccounts; ++i) {
      open.reads.push_back(core::ReadItem{account(i), 0});
      open.writes.push_back(core::WriteItem{account(i), std::to_string(kBalance)});
    }
    c.op = Client::Op::init;
    c.request = core::Request{c.op_id, std::move(open)};
  } else if (const uint64_t pick = rand(0, 9); pick < 4) {
    c.op = pick < 2 ? Client::Op::transfer_read : Client::Op::read;
    const auto consistency =
        chance(0.5) ? core::Consistency::linearizable : core::Consistency::local;
    c.request = core::Request{c.op_id, core::ScanRequest{kAccountPrefix, 0, consistency}};
  } else {
    c.op = Client::Op::put;
    const std::string key = fmt::format("put/{}", txn);
    std::string value = "v-" + txn;
    if (o_.snapshots) value.append(rand(0, 200), 'x');
    c.request = core::Request{c.op_id, core::CommitRequest{txn, {}, {{key, value}}}};
  }
  send_request(c);
}

void NodeCluster::send_request(Client& c) {
  c.wake = now_ + kAnswerTimeout;
  std::vector<SimNode*> targets;
  for (auto& [_, n] : nodes_)
    if (!n.left) targets.push_back(&n);
  SimNode& n = *targets[rand(0, targets.size() - 1)];
  if (!n.up) return;  // refused connection: it times out and tries another
  schedule(Event{Event::client_request, now_ + rand(1, 15), 0, n.id, "", n.incarnation, nullptr,
                 c.index, c.op_id, std::make_shared<const core::Request>(c.request)});
}

void NodeCluster::on_reply(const Event& e) {
  Client& c = clients_.at(e.client);
  const core::Response& r = *e.response;
  const auto* commit = std::get_if<core::CommitRequest>(&e.request->body);
  // An answer to an earlier try of this operation counts as well; one to an operation already
  // finished is checked, then dropped.
  if (e.op != c.op_id || c.op == Client::Op::none) {
    if (auto* cr = std::get_if<core::CommitReply>(&r.body); cr && commit)
      check_acked(commit->txn_id, cr->seqno, cr->committed, e.node);
    return;
  }
  if (auto* err = std::get_if<core::ErrorReply>(&r.body)) {
    switch (err->code) {
      case core::ErrorCode::not_primary:
      case core::ErrorCode::busy:
      case core::ErrorCode::storage:
      case core::ErrorCode::unavailable:
        c.wake = now_ + rand(100, 500);  // an honest refusal: nothing written; try again
        return;
      default:
        throw SimViolation(fmt::format("{} refused a valid request of client {}: {}", e.node,
                                       c.index, err->message));
    }
  }
  if (auto* cr = std::get_if<core::CommitReply>(&r.body)) {
    if (!commit)
      throw SimViolation(
          fmt::format("{} answered a read of client {} with a commit", e.node, c.index));
    check_acked(commit->txn_id, cr->seqno, cr->committed, e.node);
    trace("client",
          fmt::format("\"event\":\"ack\",\"txn\":\"{}\",\"outcome\":\"{}\",\"seqno\":{}",
                      commit->txn_id, cr->committed ? "committed" : "conflict", cr->seqno),
          fmt::format("ack {} {} at seqno {} from {}", commit->txn_id,
                      cr->committed ? "committed" : "conflict", cr->seqno, e.node));
    if (cr->committed) {
      ++result_.acked;
      if (c.op == Client::Op::put) acked_puts_[commit->writes[0].key] = *commit->writes[0].value;
    }
    c.op = Client::Op::none;
    c.wake = now_ + rand(0, 50);
    return;
  }
  const auto* scan = std::get_if<core::ScanReply>(&r.body);
  if (!scan)
    throw SimViolation(fmt::format("{} answered client {} with something else", e.node, c.index));
  check_bank(*scan, e.node);
  if (c.op == Client::Op::transfer_read) return transfer_after_read(c, *scan);
  c.op = Client::Op::none;
  c.wake = now_ + rand(0, 50);
}

// Every read of the accounts is one snapshot of a committed state: all of them or none, and
// their sum what the bank opened with.
void NodeCluster::check_bank(const core::ScanReply& r, const NodeId& at) {
  if (r.entries.empty()) return;
  int64_t sum = 0;
  for (const auto& e : r.entries) sum += std::stoll(e.value);
  if (r.entries.size() != kAccounts || sum != kAccounts * kBalance)
    throw SimViolation(fmt::format("{} read {} accounts summing to {}: the bank holds {} in {}", at,
                                   r.entries.size(), sum, kAccounts * kBalance, kAccounts));
}

// A transfer between two accounts, valid only if neither changed since the read.
void NodeCluster::transfer_after_read(Client& c, const core::ScanReply& r) {
  if (r.entries.size() != kAccounts) {  // the bank is not open yet
    c.op = Client::Op::none;
    return;
  }
  const int from = static_cast<int>(rand(0, kAccounts - 1));
  const int to = (from + 1 + static_cast<int>(rand(0, kAccounts - 2))) % kAccounts;
  const auto& a = r.entries[from];
  const auto& b = r.entries[to];
  const int64_t amount = static_cast<int64_t>(rand(0, 20));
  core::CommitRequest t{fmt::format("c{}-{}", c.index, ++c.next),
                        {{a.key, a.version}, {b.key, b.version}},
                        {{a.key, std::to_string(std::stoll(a.value) - amount)},
                         {b.key, std::to_string(std::stoll(b.value) + amount)}}};
  c.op = Client::Op::transfer;
  c.tries = 0;
  ++c.op_id;
  c.request = core::Request{c.op_id, std::move(t)};
  send_request(c);
}

}  // namespace tutti::sim
