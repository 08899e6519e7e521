// Order-independent hash of a key-value store's contents: the sum (mod 2^128) of a 128-bit hash of
// every (key, version, value). Adding and removing one entry is O(1), so the store keeps it current
// on every write, and two nodes at the same seqno can compare one short string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tutti::storage {

class ContentHash {
 public:
  ContentHash() = default;
  ContentHash(uint64_t lo, uint64_t hi) : lo_(lo), hi_(hi) {}

  void add(std::string_view key, uint64_t version, std::string_view value);
  void remove(std::string_view key, uint64_t version, std::string_view value);

  uint64_t lo() const { return lo_; }
  uint64_t hi() const { return hi_; }
  // 32 lowercase hex digits, high half first.
  std::string hex() const;
  bool operator==(const ContentHash&) const = default;

 private:
  uint64_t lo_ = 0;
  uint64_t hi_ = 0;
};

}  // namespace tutti::storage
