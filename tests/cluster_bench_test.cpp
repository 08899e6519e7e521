// tutti-bench against a real cluster that loses a node mid-run: its clients move to the others.
#include "cluster.hpp"

TEST_CASE("tutti-bench: kill -9 of a node mid-run - its clients move on, nothing is lost") {
  Cluster c(3);
  std::string nodes;
  for (auto& n : c.nodes) nodes += (nodes.empty() ? "" : ",") + n.client_addr();
  CliResult r;
  std::thread bench([&] {
    r = run({TUTTI_BENCH_BIN, "--nodes", nodes, "--clients", "6", "--duration", "5", "--keys",
             "1000", "--workload", "bank", "--load", "--json"});
  });
  c.wait_until([&] { return c.status(0)["last_committed"].get<uint64_t>() > 200; },
               "the bank's transfers under way");
  c.nodes[2].process.kill9();
  bench.join();
  INFO(r.err);
  REQUIRE(r.code == 0);
  const json j = json::parse(r.out);
  CHECK(j["failovers"].get<int>() >= 2);  // the clients of n3
  CHECK(j["errors"] == 0);
  CHECK(j["unknown"] == 0);
  CHECK(j["bank_ok"] == true);  // every transfer committed once, or not at all
  CHECK(j["committed"].get<int>() > 100);
}
