// HOST:PORT, as the client tools and the node take it: the one parser is gcs/'s (the group's
// addresses are the same kind).
#pragma once

#include "gcs/address.hpp"

namespace tutti::core {

using gcs::HostPort;
using gcs::parse_host_port;
using gcs::parse_host_port_list;

}  // namespace tutti::core
