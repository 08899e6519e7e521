// A hostile or careless client against a real tuttid: every request gets a clear answer, no
// client can lock the others out or make the node spin, and the node keeps serving.
#include <sys/socket.h>
#include <unistd.h>

#include <lmdb.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/codec.hpp"
#include "process.hpp"
#include "single_node.hpp"

using namespace tutti;
using namespace tutti::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// CPU seconds (user + system) the process has used so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto close_paren = stat.rfind(')');
  REQUIRE(close_paren != std::string::npos);
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Reads one response frame from fd (SO_RCVTIMEO bounds the wait); nullopt on close or timeout.
std::optional<core::Response> read_response(int fd) {
  std::string in;
  char buf[4096];
  for (;;) {
    if (in.size() >= core::kFrameHeaderBytes) {
      const uint32_t len = core::frame_length(in);
      if (in.size() >= core::kFrameHeaderBytes + len)
        return core::decode_response(std::string_view(in).substr(core::kFrameHeaderBytes, len));
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    in.append(buf, n);
  }
}

int open_idle(uint16_t port, int timeout_s = 5) {
  const int fd = connect_loopback(port);
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) ::close(fd);
  }
};

}  // namespace

TEST_CASE("keys that are not UTF-8 are base64 in JSON - and accepted so in txn input") {
  Single s;
  auto w = s.cli({"--json", "txn", "-"},
                 R"({"writes":[{"key":"/wBr","key_encoding":"base64","value":"x"},
                               {"key":"plain","value":"y"}]})");
  REQUIRE(w.code == 0);
  auto scan = s.cli({"--json", "scan", ""});
  REQUIRE(scan.code == 0);
  auto list = json::parse(scan.out);
  REQUIRE(list.size() == 2);  // in byte order: "plain" < "\xff\x00k"
  CHECK(list[0]["key"] == "plain");
  CHECK_FALSE(list[0].contains("key_encoding"));
  CHECK(list[1]["key"] == "/wBr");
  CHECK(list[1]["key_encoding"] == "base64");
  // argv cannot carry a NUL: the key is read back through a transaction.
  auto cas = s.cli({"--json", "txn", "-"},
                   R"({"reads":[{"key":"/wBr","key_encoding":"base64","version":1}],
                       "writes":[{"key":"/wBr","key_encoding":"base64","value":"z"}]})");
  CHECK(cas.code == 0);
  auto stale = s.cli({"--json", "txn", "-"},
                     R"({"reads":[{"key":"/wBr","key_encoding":"base64","version":1}],
                         "writes":[{"key":"plain","value":"q"}]})");
  CHECK(stale.code == 2);
  auto conflict = json::parse(stale.out);
  CHECK(conflict["conflict"] == json::array({"/wBr"}));
  CHECK(conflict["conflict_encoding"] == "base64");
  auto bad =
      s.cli({"txn", "-"}, R"({"writes":[{"key":"%%%","key_encoding":"base64","value":"x"}]})");
  CHECK(bad.code == 4);
  CHECK_THAT(bad.err, Catch::Contains("not valid base64"));
  auto g = s.cli({"--json", "get", "plain"});
  CHECK(json::parse(g.out)["key"] == "plain");
}

TEST_CASE("tutti's usage errors are exit 4 with a message that says what is wrong") {
  Single s;
  auto neg = s.cli({"cas", "k", "-1", "v"});
  CHECK(neg.code == 4);
  CHECK_THAT(neg.err, Catch::Contains("whole number"));
  auto unknown = s.cli({"frobnicate"});
  CHECK(unknown.code == 4);
  CHECK_THAT(unknown.err, Catch::Contains("unknown command 'frobnicate'"));
  auto zero = run({TUTTI_BIN, "--node", s.node.client_addr(), "--timeout", "0", "status"});
  CHECK(zero.code == 4);
  CHECK(zero.err.size() < 300);
  CHECK_THAT(zero.err, Catch::Contains("0.001 to 3600"));
  auto empty_id = s.cli({"--txn-id", "", "put", "k", "v"});
  CHECK(empty_id.code == 4);
  CHECK_THAT(empty_id.err, Catch::Contains("must not be empty"));
  CHECK(s.cli({"put", "k"}).code == 4);
  CHECK(s.status()["last_committed"] == 0);
}

TEST_CASE("put takes its value from a file or stdin - bytes as they are, near the limit too") {
  Single s({"--bootstrap", "--max-value-size", "1048576"});
  const std::string big(1048576, '\x07');
  auto from_stdin = s.cli({"put", "big", "--value-file", "-"}, big);
  REQUIRE(from_stdin.code == 0);
  TempDir dir;
  const auto file = dir / "value.bin";
  std::ofstream(file, std::ios::binary) << std::string("a\0b\nc", 5);
  CHECK(s.cli({"put", "f", "--value-file", file.string()}).code == 0);
  auto got = s.cli({"--json", "get", "f"});
  CHECK(json::parse(got.out)["value"] == std::string("a\0b\nc", 5));
  CHECK(s.cli({"get", "big"}).out == big + "\n");
  auto both = s.cli({"put", "x", "v", "--value-file", file.string()});
  CHECK(both.code == 4);
  auto missing = s.cli({"put", "x", "--value-file", (dir / "nope").string()});
  CHECK(missing.code == 4);
  CHECK_THAT(missing.err, Catch::Contains("cannot read"));
}

TEST_CASE("a transaction id reused for another transaction is refused with exit 5") {
  Single s;
  REQUIRE(s.cli({"--txn-id", "id-1", "put", "k", "v1"}).code == 0);
  auto retry = s.cli({"--json", "--txn-id", "id-1", "put", "k", "v1"});
  CHECK(retry.code == 0);
  CHECK(json::parse(retry.out)["duplicate"] == true);
  auto reused = s.cli({"--txn-id", "id-1", "put", "k", "other"});
  CHECK(reused.code == 5);
  CHECK_THAT(reused.err, Catch::Contains("used before for a different transaction"));
  auto reused_json = s.cli({"--json", "--txn-id", "id-1", "del", "k"});
  CHECK(reused_json.code == 5);
  auto j = json::parse(reused_json.out);
  CHECK(j["error"] == "txn_id_reused");
  CHECK_THAT(j["message"].get<std::string>(), Catch::Contains("nothing written"));
  CHECK(s.cli({"get", "k"}).out == "v1\n");
}

TEST_CASE("a request frame over the limit is exit 4 with the node's reason - not outcome unknown") {
  Single s;
  const std::string huge((21u << 20), 'v');  // over the 20 MiB frame limit
  auto r = s.cli({"put", "k", "--value-file", "-"}, huge);
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Catch::Contains("over the limit"));
  CHECK_THAT(r.err, !Catch::Contains("outcome unknown"));
  CHECK(s.cli({"put", "k", "small"}).code == 0);
}

TEST_CASE("idle connections cannot lock clients out: past the cap busy - idle ones are closed") {
  Single s({"--bootstrap", "--max-client-connections", "8", "--client-idle-timeout", "1500"});
  Fds idle;
  for (int i = 0; i < 8; ++i) idle.fds.push_back(open_idle(s.node.client_port));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto refused = s.cli({"put", "k", "v"});
  CHECK(refused.code == 3);
  CHECK_THAT(refused.err, Catch::Contains("busy"));
  CHECK_THAT(refused.err, !Catch::Contains("outcome unknown"));
  // The idle ones are told why and closed; then everyone is served again.
  auto told = read_response(idle.fds[0]);
  REQUIRE(told);
  CHECK(told->id == 0);
  CHECK_THAT(std::get<core::ErrorReply>(told->body).message, Catch::Contains("idle"));
  CHECK(s.cli({"put", "k", "v"}).code == 0);
}

TEST_CASE("a frame that stops half-way is cut after the frame timeout") {
  Single s({"--bootstrap", "--client-frame-timeout", "300"});
  const int fd = open_idle(s.node.client_port);
  const std::string whole = core::frame(std::string(1000, 'x'));
  ::send(fd, whole.data(), 10, MSG_NOSIGNAL);
  const auto started = Clock::now();
  auto r = read_response(fd);
  ::close(fd);
  REQUIRE(r);
  CHECK(Clock::now() - started < std::chrono::seconds(3));
  CHECK_THAT(std::get<core::ErrorReply>(r->body).message, Catch::Contains("half-way"));
  CHECK(s.cli({"put", "k", "v"}).code == 0);
}

TEST_CASE("partly sent frames are bounded over all connections together") {
  Single s({"--bootstrap", "--client-buffer-limit", "8"});
  const std::string header = core::frame(std::string(4u << 20, 'x')).substr(0, 4);
  const std::string part(3u << 20, 'x');  // 3 MiB of a 4 MiB frame, on each connection
  Fds conns;
  int cut = 0;
  for (int i = 0; i < 4; ++i) {
    const int fd = open_idle(s.node.client_port, 2);
    conns.fds.push_back(fd);
    ::send(fd, header.data(), header.size(), MSG_NOSIGNAL);
    ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (int fd : conns.fds) {
    timeval tv{0, 300000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (auto r = read_response(fd))
      if (auto* e = std::get_if<core::ErrorReply>(&r->body); e && e->code == core::ErrorCode::busy)
        ++cut;
  }
  CHECK(cut >= 2);  // 8 MiB hold two of the 3 MiB parts; the others are told busy
  CHECK(s.cli({"put", "k", "v"}).code == 0);
}

TEST_CASE("a low descriptor limit caps connections below it - no spinning, no flood of logs") {
  Single s({"--bootstrap"}, {"/usr/bin/prlimit", "--nofile=200:200", "--"});
  CHECK_THAT(s.node.log_text(), Catch::Contains("client connections: at most 72"));
  const double cpu_before = cpu_seconds(s.node.process.pid());
  Fds conns;
  for (int i = 0; i < 150; ++i) {
    try {
      conns.fds.push_back(connect_loopback(s.node.client_port));
    } catch (const std::exception&) {
      // the test process's own limit; enough were opened
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double cpu_used = cpu_seconds(s.node.process.pid()) - cpu_before;
  CHECK(cpu_used < 0.5);
  CHECK(std::filesystem::file_size(s.node.log) < 64 * 1024);
  for (int fd : conns.fds) ::close(fd);
  conns.fds.clear();
  CHECK(s.node.process.running());
  CHECK(s.cli({"put", "k", "v"}).code == 0);
}

namespace {

// A stopped node's data dir with some data, copied to `name` and damaged by `damage`.
std::filesystem::path damaged_copy(
    const std::filesystem::path& from, const TempDir& dir, const std::string& name,
    const std::function<void(const std::filesystem::path&)>& damage) {
  const auto to = dir / name;
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  std::filesystem::remove(to / "LOCK");
  damage(to / "data.mdb");
  return to;
}

void overwrite(const std::filesystem::path& file, uint64_t at, uint64_t bytes) {
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(at));
  const std::string junk(bytes, '\xab');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

// Where LMDB's pages end in the data dir's file: tuttid keeps the file longer (zeros it warms
// ahead, storage/page_warmer.hpp), and damage there would harm nothing.
uint64_t lmdb_used_bytes(const std::filesystem::path& data_dir) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == 0);
  REQUIRE(mdb_env_open(env, data_dir.c_str(), MDB_RDONLY, 0644) == 0);
  MDB_envinfo info;
  MDB_stat st;
  REQUIRE(mdb_env_info(env, &info) == 0);
  REQUIRE(mdb_env_stat(env, &st) == 0);
  mdb_env_close(env);
  return (uint64_t{info.me_last_pgno} + 1) * st.ms_psize;
}

CliResult verify(const std::filesystem::path& data_dir) {
  return run({TUTTID_BIN, "--data-dir", data_dir.string(), "--verify"});
}

}  // namespace

TEST_CASE("a damaged data file is refused with a clear message - --verify finds it") {
  TempDir dir;
  {
    Single s;
    for (int t = 0; t < 6; ++t) {
      json writes = json::array();
      for (int i = 0; i < 50; ++i)
        writes.push_back(
            {{"key", "k" + std::to_string(t * 50 + i)}, {"value", std::string(3000, 'a' + t)}});
      REQUIRE(s.cli({"txn", "-"}, json{{"writes", writes}}.dump()).code == 0);
    }
    CHECK(verify(s.node.data_dir).code == 2);  // in use: cannot check, not "damaged"
    s.node.process.signal(SIGTERM);
    REQUIRE(s.node.process.wait() == 0);
    std::filesystem::copy(s.node.data_dir, dir / "good", std::filesystem::copy_options::recursive);
  }
  const auto good = dir / "good";
  std::filesystem::remove(good / "LOCK");
  const uint64_t size = lmdb_used_bytes(good);
  REQUIRE(size > (1u << 20));
  REQUIRE(std::filesystem::file_size(good / "data.mdb") >= size);

  auto ok = verify(good);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::StartsWith("ok:") && Catch::Contains("content hash"));

  auto half =
      damaged_copy(good, dir, "half", [&](auto f) { std::filesystem::resize_file(f, size / 2); });
  auto empty =
      damaged_copy(good, dir, "empty", [&](auto f) { std::filesystem::resize_file(f, 0); });
  auto tail = damaged_copy(good, dir, "tail", [&](auto f) { overwrite(f, size - 65536, 65536); });
  auto middle = damaged_copy(good, dir, "middle", [&](auto f) { overwrite(f, size / 2, 65536); });
  for (const auto& d : {half, empty, tail, middle}) {
    INFO(d.filename().string());
    auto v = verify(d);
    CHECK(v.code == 1);
    CHECK_THAT(v.out, Catch::StartsWith("DAMAGED"));
  }
  for (const auto& d : {half, empty}) {
    NodeProcess n{"n1", d};
    REQUIRE_THROWS(n.start());
    INFO(n.log_text());
    CHECK_THAT(n.log_text(), Catch::Contains("data.mdb"));
    CHECK(std::filesystem::file_size(d / "data.mdb") < size);  // not re-created, not grown
  }
  NodeProcess restarted{"n1", good};
  restarted.start();
  CHECK(run({TUTTI_BIN, "--node", restarted.client_addr(), "get", "--local", "k0"}).out ==
        std::string(3000, 'a') + "\n");
}
