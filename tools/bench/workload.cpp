#include "bench/workload.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tutti::bench {
namespace {

int width(uint64_t n) {
  return static_cast<int>(std::max<size_t>(7, std::to_string(n > 0 ? n - 1 : 0).size()));
}

uint64_t balance(const core::ValueReply& r) {
  if (!r.found) return 0;
  try {
    return std::stoull(r.value);
  } catch (const std::exception&) {
    return 0;  // not an account this benchmark wrote: treated as empty, never drawn from
  }
}

}  // namespace

std::string key_name(const WorkloadConfig& c, uint64_t i) {
  return fmt::format("key{:0{}}", i, width(c.keys));
}
std::string account_name(const WorkloadConfig& c, uint64_t i) {
  return fmt::format("acct{:0{}}", i, width(c.keys));
}
std::string hot_key_name(uint64_t i) {
  return fmt::format("hot{:03}", i);
}

OpGenerator::OpGenerator(const WorkloadConfig& config, std::string txn_prefix, uint64_t seed)
    : c_(config), txn_prefix_(std::move(txn_prefix)), rng_(seed) {
  random_bytes_.resize(std::max<size_t>(4096, 2 * c_.value_size));
  std::uniform_int_distribution<int> letter('a', 'z');
  for (auto& ch : random_bytes_) ch = static_cast<char>(letter(rng_));
}

std::string OpGenerator::value() {
  std::uniform_int_distribution<size_t> at(0, random_bytes_.size() - c_.value_size);
  return random_bytes_.substr(at(rng_), c_.value_size);
}

std::string OpGenerator::txn_id() {
  return txn_prefix_ + std::to_string(next_txn_++);
}

OpGenerator::Op OpGenerator::next() {
  std::uniform_int_distribution<uint64_t> any(0, c_.keys - 1);
  Op op;
  auto distinct = [&](size_t n, auto name) {
    while (op.keys.size() < std::min<uint64_t>(n, c_.keys)) {
      std::string k = name(any(rng_));
      if (std::find(op.keys.begin(), op.keys.end(), k) == op.keys.end()) op.keys.push_back(k);
    }
  };
  switch (c_.workload) {
    case Workload::update:
      op.keys = {key_name(c_, any(rng_))};
      break;
    case Workload::read:
      op.keys = {key_name(c_, any(rng_))};
      op.read_only = true;
      break;
    case Workload::mixed:
      op.keys = {key_name(c_, any(rng_))};
      op.read_only = std::uniform_int_distribution<int>(0, 9)(rng_) != 0;
      break;
    case Workload::txn4:
      distinct(4, [&](uint64_t i) { return key_name(c_, i); });
      op.transaction = true;
      break;
    case Workload::hotspot:
      op.keys = {hot_key_name(std::uniform_int_distribution<uint64_t>(0, kHotKeys - 1)(rng_))};
      op.transaction = true;
      break;
    case Workload::bank:
      distinct(2, [&](uint64_t i) { return account_name(c_, i); });
      op.transaction = true;
      break;
  }
  return op;
}

std::vector<core::Request> OpGenerator::first_step(const Op& op) {
  std::vector<core::Request> out;
  if (op.read_only || op.transaction) {
    for (const auto& k : op.keys) out.push_back(core::Request{0, core::GetRequest{k, c_.reads}});
    return out;
  }
  std::string id = txn_id();
  out.push_back(core::Request{
      0, core::CommitRequest{std::move(id), {}, {core::WriteItem{op.keys[0], value()}}}});
  return out;
}

std::optional<core::Request> OpGenerator::commit(const Op& op,
                                                 const std::vector<core::ValueReply>& reads) {
  core::CommitRequest c{txn_id(), {}, {}};
  for (size_t i = 0; i < op.keys.size(); ++i)
    c.reads.push_back(core::ReadItem{op.keys[i], reads[i].found ? reads[i].version : 0});
  if (c_.workload == Workload::bank) {
    const uint64_t from = balance(reads[0]), to = balance(reads[1]);
    if (from == 0) return std::nullopt;
    const uint64_t amount =
        std::uniform_int_distribution<uint64_t>(1, std::min<uint64_t>(from, 100))(rng_);
    c.writes = {core::WriteItem{op.keys[0], std::to_string(from - amount)},
                core::WriteItem{op.keys[1], std::to_string(to + amount)}};
  } else if (c_.workload == Workload::hotspot) {
    c.writes = {core::WriteItem{op.keys[0], std::to_string(balance(reads[0]) + 1)}};
  } else {
    for (const auto& k : op.keys) c.writes.push_back(core::WriteItem{k, value()});
  }
  return core::Request{0, std::move(c)};
}

}  // namespace tutti::bench
