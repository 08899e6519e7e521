// tutti-bench as scripts run it: every workload against a real node, its JSON keys, its exit codes.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "single_node.hpp"

using namespace tutti::test;
using nlohmann::json;

namespace {

CliResult bench(const std::vector<std::string>& args) {
  std::vector<std::string> argv{TUTTI_BENCH_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

}  // namespace

TEST_CASE("tutti-bench: every workload runs through a node and reports what scripts read") {
  Single s;
  for (const std::string workload : {"update", "txn4", "hotspot", "read", "mixed", "bank"}) {
    auto r = bench({"--nodes", s.node.client_addr(), "--clients", "3", "--duration", "0.5",
                    "--keys", "200", "--workload", workload, "--load", "--json"});
    INFO(workload << ": " << r.err);
    REQUIRE(r.code == 0);
    const json j = json::parse(r.out);
    for (const char* key : {"ops_per_s", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
                            "committed", "conflicts", "errors", "unknown"})
      CHECK(j.contains(key));
    CHECK(j["ops_per_s"].get<double>() > 0);
    CHECK(j["errors"] == 0);
    CHECK(j["unknown"] == 0);
    CHECK(j["p50_ms"].get<double>() <= j["p99_ms"].get<double>());
    CHECK(j["p99_ms"].get<double>() <= j["max_ms"].get<double>());
    if (workload == "read") CHECK(j["committed"] == 0);
    if (workload == "update") CHECK(j["committed"] == j["ops"]);
    if (workload == "bank") CHECK(j["bank_ok"] == true);
  }
  // The bank's check reads what the transfers left: every account, the total as loaded.
  auto scan = s.cli({"scan", "acct"});
  CHECK(std::count(scan.out.begin(), scan.out.end(), '\n') == 200);
}

TEST_CASE("tutti-bench: bad usage exits 4 and says why - no node answering exits 3") {
  CHECK(bench({"--clients", "1", "--duration", "1"}).code == 4);  // no --nodes
  auto r =
      bench({"--nodes", "127.0.0.1:1", "--clients", "1", "--duration", "1", "--workload", "nope"});
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Catch::Contains("workload"));
  CHECK(bench({"--nodes", "nowhere", "--clients", "1", "--duration", "1"}).code == 4);
  r = bench({"--nodes", "127.0.0.1:1", "--clients", "1", "--duration", "1"});
  CHECK(r.code == 3);
  CHECK_FALSE(r.err.empty());
  Single s;
  r = bench(
      {"--nodes", s.node.client_addr(), "--clients", "1", "--duration", "1", "--workload", "bank"});
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Catch::Contains("--load"));
}

namespace {

// Its members listen on consecutive ports from one that was free: one of the others may be
// taken (exit 3, "cannot start"), then it runs again elsewhere.
CliResult gcs_bench(const std::vector<std::string>& args) {
  CliResult r;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<std::string> argv{GCS_BENCH_BIN, "--port", std::to_string(free_port())};
    argv.insert(argv.end(), args.begin(), args.end());
    r = run(argv);
    if (r.code != 3 || r.err.find("cannot start") == std::string::npos) break;
  }
  return r;
}

}  // namespace

TEST_CASE("gcs-bench: members order messages, each delivers the same sequence, the JSON has it") {
  for (const bool latency : {false, true}) {
    std::vector<std::string> args{"--members", "3",        "--size", "200",   "--duration",
                                  "0.5",       "--warmup", "0.2",    "--json"};
    if (latency) args.push_back("--latency");
    auto r = gcs_bench(args);
    INFO(r.err);
    REQUIRE(r.code == 0);
    const json j = json::parse(r.out);
    CHECK(j["mode"] == (latency ? "latency" : "throughput"));
    CHECK(j["same_sequence"] == true);
    CHECK(j["ordered_msgs_per_s"].get<double>() > 0);
    CHECK(j["mb_per_s"].get<double>() > 0);
    CHECK(j["delivered"].get<uint64_t>() > 0);
    CHECK(j["samples"].get<uint64_t>() > 0);
    CHECK(j["p50_us"].get<double>() <= j["p99_us"].get<double>());
  }
}

TEST_CASE("gcs-bench: bad usage exits 4") {
  CHECK(gcs_bench({"--members", "9"}).code == 4);
  CHECK(gcs_bench({"--size", "4"}).code == 4);
  CHECK(gcs_bench({"--nope"}).code == 4);
}
