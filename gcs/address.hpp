// HOST:PORT addresses of nodes (client and group ports alike). HOST is a name, an IPv4
// address or a bracketed IPv6 one ([::1]:7101).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tutti::gcs {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string text() const;
};

// "HOST:PORT" (HOST may be [v6]); throws std::invalid_argument with a message fit for a user.
HostPort parse_host_port(std::string_view text);
// A comma-separated list of HOST:PORT.
std::vector<HostPort> parse_host_port_list(std::string_view text);

}  // namespace tutti::gcs
