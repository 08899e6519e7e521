#include "bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tutti::bench {

int Histogram::bucket(uint64_t v) {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (v < kSub) return static_cast<int>(v);
  const int exp = 63 - std::countl_zero(v);  // >= kSubBits
  const int shift = exp - kSubBits;
  return static_cast<int>(((shift + 1) << kSubBits) + ((v >> shift) - kSub));
}

double Histogram::middle(int b) {
  constexpr int kSub = 1 << kSubBits;
  if (b < kSub) return b;
  const int shift = (b >> kSubBits) - 1;
  const double low = std::ldexp(static_cast<double>(kSub + (b & (kSub - 1))), shift);
  return low + std::ldexp(1.0, shift) / 2;
}

void Histogram::add(uint64_t micros) {
  ++counts_[bucket(micros)];
  ++count_;
  max_ = std::max(max_, micros);
}

void Histogram::merge(const Histogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

double Histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return std::min(middle(i), static_cast<double>(max_));
  }
  return static_cast<double>(max_);
}

}  // namespace tutti::bench
