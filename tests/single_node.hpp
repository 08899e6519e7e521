// A one-node cluster of a real tuttid for the process tests, and raw bytes on its client port.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "temp_dir.hpp"

namespace tutti::test {

struct Single {
  TempDir dir;
  NodeProcess node;
  explicit Single(const std::vector<std::string>& extra = {"--bootstrap"},
                  std::vector<std::string> wrapper = {}) {
    node.name = "n1";
    node.data_dir = dir / "n1";
    node.wrapper = std::move(wrapper);
    node.start(extra);
  }
  CliResult cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {TUTTI_BIN, "--node", node.client_addr()});
    return run(args, input);
  }
  nlohmann::json status() { return nlohmann::json::parse(cli({"--json", "status"}).out); }
};

// Sends raw bytes on a fresh connection; returns what the node sent back until it closed or
// 2 s passed.
inline std::string raw_exchange(uint16_t port, const std::string& bytes) {
  const int fd = connect_loopback(port);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(bytes.size()));
  ::shutdown(fd, SHUT_WR);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, n);
  ::close(fd);
  return got;
}

}  // namespace tutti::test
