// A latency histogram with log-spaced buckets: 32 per power of two (within about 3%), from 1 us
// to hours, in a fixed array, so recording costs an index and an increment.
#pragma once

#include <array>
#include <cstdint>

namespace tutti::bench {

class Histogram {
 public:
  void add(uint64_t micros);
  void merge(const Histogram& other);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The q-quantile (0 < q <= 1) in microseconds: the middle of its bucket, never above max().
  double quantile(double q) const;

 private:
  static constexpr int kSubBits = 5;
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;
  static int bucket(uint64_t v);
  static double middle(int bucket);
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0, max_ = 0;
};

}  // namespace tutti::bench
