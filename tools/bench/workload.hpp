// What tutti-bench's clients do (tools/tutti_bench.cpp): each operation is one or two steps of
// requests sent together; a transaction's second step is its commit, built from the reads of the
// first, and certification validates those reads.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/messages.hpp"

namespace tutti::bench {

enum class Workload { update, txn4, hotspot, read, mixed, bank };

inline constexpr uint64_t kHotKeys = 100;
inline constexpr uint64_t kBankBalance = 1000;  // each account's at --load

struct WorkloadConfig {
  Workload workload = Workload::update;
  uint64_t keys = 100000;
  size_t value_size = 100;
  core::Consistency reads = core::Consistency::linearizable;
};

std::string key_name(const WorkloadConfig& c, uint64_t i);  // "key0000042"
std::string account_name(const WorkloadConfig& c, uint64_t i);
std::string hot_key_name(uint64_t i);

// One client's operations. Not thread-safe: one per client.
class OpGenerator {
 public:
  OpGenerator(const WorkloadConfig& config, std::string txn_prefix, uint64_t seed);
  // The first step of a new operation (a retry after a conflict starts here again, for the
  // same keys: the same transaction, read anew).
  struct Op {
    std::vector<std::string> keys;  // what it reads, or writes blindly
    bool read_only = false;
    bool transaction = false;  // reads, then a commit of what it read
  };
  Op next();
  std::vector<core::Request> first_step(const Op& op);
  // The commit of a transaction, given the values its reads found (in the order of op.keys).
  // nullopt: nothing to commit (a bank account without the money: the operation ends).
  std::optional<core::Request> commit(const Op& op, const std::vector<core::ValueReply>& reads);

 private:
  std::string value();
  std::string txn_id();
  WorkloadConfig c_;
  std::string txn_prefix_;
  std::mt19937_64 rng_;
  std::string random_bytes_;
  uint64_t next_txn_ = 0;
};

}  // namespace tutti::bench
