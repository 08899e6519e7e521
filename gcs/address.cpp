#include "gcs/address.hpp"

#include <charconv>

#include <fmt/format.h>

namespace tutti::gcs {

std::string HostPort::text() const {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                             : fmt::format("{}:{}", host, port);
}

HostPort parse_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    throw std::invalid_argument(fmt::format("'{}' is not HOST:PORT", text));
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[' && host.back() == ']' && host.size() > 2) {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of("[]:") != std::string_view::npos) {
    throw std::invalid_argument(
        fmt::format("'{}' is not HOST:PORT (an IPv6 address goes in brackets: [::1]:7101)", text));
  }
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    throw std::invalid_argument(
        fmt::format("'{}' in '{}' is not a port (1-65535)", port_text, text));
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

std::vector<HostPort> parse_host_port_list(std::string_view text) {
  std::vector<HostPort> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const auto item = text.substr(start, comma - start);
    if (!item.empty()) out.push_back(parse_host_port(item));
    start = comma + 1;
  }
  if (out.empty()) throw std::invalid_argument("empty address list");
  return out;
}

}  // namespace tutti::gcs
