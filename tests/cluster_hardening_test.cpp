// Clusters of tuttid processes under hostile or unlucky conditions: pipelined linearizable reads,
// made-up addresses in the gcs handshake, members gone for good, a full disk.
#include "cluster.hpp"
TEST_CASE("2 nodes: 4200 pipelined linearizable gets on one connection - each answered once") {
  Cluster c(2);
  REQUIRE(c.cli(0, {"put", "k", "v"}).code == 0);
  constexpr uint64_t kReads = 4200;
  std::string bytes;
  for (uint64_t id = 1; id <= kReads; ++id)
    bytes += core::frame(core::encode_request(core::Request{id, core::GetRequest{"k"}}));
  const int fd = connect_loopback(c.nodes[1].client_port);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // Written while answers are read, so neither side's buffers can block the other.
  std::thread writer([&] { ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); });
  std::map<uint64_t, int> answered;
  size_t values = 0;
  std::string in;
  char buf[65536];
  while (answered.size() < kReads) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // closed, or 10 s without an answer
    in.append(buf, n);
    size_t at = 0;
    while (in.size() - at >= core::kFrameHeaderBytes) {
      const uint32_t len = core::frame_length(std::string_view(in).substr(at));
      if (in.size() - at - core::kFrameHeaderBytes < len) break;
      auto r =
          core::decode_response(std::string_view(in).substr(at + core::kFrameHeaderBytes, len));
      at += core::kFrameHeaderBytes + len;
      ++answered[r.id];
      if (auto* v = std::get_if<core::ValueReply>(&r.body); v && v->found && v->value == "v")
        ++values;
    }
    in.erase(0, at);
  }
  writer.join();
  ::close(fd);
  CHECK(answered.size() == kReads);
  size_t twice = 0, unknown = 0;
  for (const auto& [id, n] : answered) {
    if (n != 1) ++twice;
    if (id == 0 || id > kReads) ++unknown;
  }
  CHECK(twice == 0);
  CHECK(unknown == 0);
  CHECK(values == kReads);
}

namespace {

// A port that accepts and at once closes connections, counting them: where an address a peer
// made up points.
struct CountingListener {
  int fd = -1;
  uint16_t port = 0;
  std::atomic<int> accepted{0};
  std::atomic<bool> stop{false};
  std::thread thread;
  CountingListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    timeval tv{0, 100000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread = std::thread([this] {
      while (!stop) {
        const int c = ::accept(fd, nullptr, nullptr);
        if (c >= 0) {
          ++accepted;
          ::close(c);
        }
      }
    });
  }
  ~CountingListener() {
    stop = true;
    thread.join();
    ::close(fd);
  }
  int count_for(std::chrono::milliseconds d) {
    const int before = accepted;
    std::this_thread::sleep_for(d);
    return accepted - before;
  }
};

}  // namespace

TEST_CASE("gcs: an address a Hello makes up is checked, not believed - never gossiped or kept") {
  Cluster c(2, {"--gcs-forget-after", "2"});
  CountingListener bogus;
  const int fd = connect_loopback(c.nodes[0].gcs_port);
  gcs::PeerInfo self{std::string(16, '\x42'),
                     "intruder",
                     "127.0.0.1:" + std::to_string(bogus.port),
                     "",
                     "JOINING",
                     0};
  const std::string body =
      gcs::encode_frame(gcs::Hello{gcs::kGcsProtocolVersion, "tutti", "", self});
  std::string framed(4, '\0');
  for (int i = 0; i < 4; ++i) framed[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
  framed += body;
  REQUIRE(::send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(framed.size()));
  CHECK(bogus.count_for(std::chrono::milliseconds(1500)) >= 1);  // n1 checks the claim
  c.wait_until([&] { return c.nodes[0].log_text().find("no longer dialing") != std::string::npos; },
               "n1 stops dialing the claimed address", std::chrono::seconds(10));
  CHECK(bogus.count_for(std::chrono::milliseconds(1500)) == 0);
  ::close(fd);
  CHECK(c.nodes[1].log_text().find("intruder") == std::string::npos);  // never gossiped
  // Not persisted either: restarted, n1 dials only its real peer.
  c.nodes[0].process.signal(SIGTERM);
  REQUIRE(c.nodes[0].process.wait() == 0);
  c.nodes[0].start({"--gcs-forget-after", "2"});
  c.wait_until([&] { return c.primary_size(0) == 2; }, "n1 back with n2");
  CHECK(bogus.count_for(std::chrono::milliseconds(1500)) == 0);
}

TEST_CASE(
    "gcs: a member unreachable for --gcs-forget-after is no longer dialed - found again on "
    "return") {
  Cluster c(3, {"--gcs-forget-after", "2"});
  c.nodes[2].process.kill9();
  c.wait_until(
      [&] { return c.nodes[0].log_text().find("forgetting member 'n3'") != std::string::npos; },
      "n1 forgets n3", std::chrono::seconds(15));
  CHECK(c.cli(0, {"put", "k", "v"}).code == 0);
  c.nodes[2].start({"--gcs-forget-after", "2"});  // it remembers the others and dials them
  c.wait_until([&] { return c.primary_size(0) == 3; }, "n3 found again");
}

// One node's disk fills up with what the others replicate: the group goes on without it, and it
// says what it is rather than claiming to be a synced member of the primary component.
TEST_CASE("3 nodes: one node's disk fills up - it reports it and refuses reads at once") {
  if (!SmallDisk::can_mount()) {
    return test::report_skipped("mounting a small tmpfs needs root");
  }
  TempDir dir;
  const SmallDisk disk(dir, "small-disk", "6m");
  const auto& mnt = disk.path();
  std::vector<NodeProcess> nodes(3);
  for (int i = 0; i < 3; ++i) {
    nodes[i].name = "n" + std::to_string(i + 1);
    nodes[i].data_dir = (i == 2 ? mnt : dir.path()) / nodes[i].name;
    nodes[i].log = dir / (nodes[i].name + ".log");
  }
  nodes[0].start({"--bootstrap"});
  const std::string seed = "127.0.0.1:" + std::to_string(nodes[0].gcs_port);
  nodes[1].start({"--peers", seed});
  nodes[2].start({"--peers", seed});
  auto cli = [&](size_t i, std::vector<std::string> args) {
    args.insert(args.begin(), {TUTTI_BIN, "--timeout", "10", "--node", nodes[i].client_addr()});
    return run(args);
  };
  auto status = [&](size_t i) {
    auto r = cli(i, {"--json", "status"});
    return r.code == 0 ? json::parse(r.out) : json{};
  };
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (status(0).value("cluster_size", 0) != 3 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(status(0)["cluster_size"] == 3);
  const std::string value(100 << 10, 'x');
  for (int i = 0; i < 120; ++i) {
    if (nodes[2].log_text().find("could not persist") != std::string::npos) break;
    cli(0, {"put", "big" + std::to_string(i), value});
  }
  REQUIRE_THAT(nodes[2].log_text(), Catch::Contains("could not persist"));
  auto st = status(2);
  CHECK(st["primary"] == false);
  CHECK(st["state"] == "JOINING");
  CHECK_THAT(st["waiting_for"].get<std::string>(), Catch::Contains("data dir"));
  const auto started = Clock::now();
  auto get = cli(2, {"get", "big0"});
  CHECK(get.code == 3);
  CHECK(Clock::now() - started < std::chrono::seconds(3));  // at once, not at the timeout
  CHECK_THAT(get.err, Catch::Contains("cannot write to its data dir"));
  CHECK(cli(2, {"get", "--local", "big0"}).code == 0);
  CHECK(cli(0, {"put", "after", "v"}).code == 0);  // the others go on
  CHECK(nodes[2].process.running());
}
