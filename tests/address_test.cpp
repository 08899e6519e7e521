// HOST:PORT: the one parser every tool, the node and the group's transport use.
#include <catch2/catch.hpp>

#include "gcs/address.hpp"

using tutti::gcs::parse_host_port;
using tutti::gcs::parse_host_port_list;

TEST_CASE("HOST:PORT takes names, IPv4 and bracketed IPv6 - and gives them back alike") {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const Case& c :
       {Case{"127.0.0.1:7101", "127.0.0.1", 7101}, Case{"node-a:1", "node-a", 1},
        Case{"[::1]:7101", "::1", 7101}, Case{"[fe80::2]:65535", "fe80::2", 65535}}) {
    INFO(c.text);
    const auto hp = parse_host_port(c.text);
    CHECK(hp.host == c.host);
    CHECK(hp.port == c.port);
    CHECK(hp.text() == c.text);
  }
}

TEST_CASE("a malformed HOST:PORT is refused with a message that says why") {
  for (const char* bad : {"", "7101", ":7101", "host:", "host:0", "host:65536", "host:71o1",
                          "::1:7101", "[::1]", "[]:7101", "[::1:7101", "a]:1"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_host_port(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(parse_host_port("::1:7101"), Catch::Contains("[::1]:7101"));
  CHECK_THROWS_WITH(parse_host_port("h:99999"), Catch::Contains("not a port"));
}

TEST_CASE("a list of HOST:PORT, commas between, IPv6 included") {
  const auto list = parse_host_port_list("127.0.0.1:1,[::1]:2,,b:3");
  REQUIRE(list.size() == 3);
  CHECK(list[1].host == "::1");
  CHECK(list[2].port == 3);
  CHECK_THROWS_AS(parse_host_port_list(","), std::invalid_argument);
}
