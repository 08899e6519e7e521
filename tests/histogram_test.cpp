#include <catch2/catch.hpp>

#include "bench/histogram.hpp"

using tutti::bench::Histogram;

TEST_CASE("bench histogram: quantiles within its 3% buckets - max exact - merge adds") {
  Histogram h;
  CHECK(h.quantile(0.5) == 0);
  for (uint64_t v = 1; v <= 100000; ++v) h.add(v);
  CHECK(h.count() == 100000);
  CHECK(h.max() == 100000);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    INFO(q);
    CHECK(h.quantile(q) == Approx(q * 100000).epsilon(0.03));
  }
  CHECK(h.quantile(1.0) <= 100000);
  Histogram small;
  for (uint64_t v = 0; v < 32; ++v) small.add(v);  // exact below 32 us
  CHECK(small.quantile(0.5) == 15);
  Histogram big;
  big.add(uint64_t{1} << 40);
  big.merge(h);
  CHECK(big.count() == 100001);
  CHECK(big.max() == uint64_t{1} << 40);
}
