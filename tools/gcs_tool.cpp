// gcs-tool: membership of a tutti cluster, as one node sees it. See `gcs-tool --help`.
// Exit codes: 0 ok, 3 the node could not be reached or answered an error, 4 bad usage.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/client.hpp"

namespace {

using namespace tutti;
using nlohmann::json;

enum Exit { kOk = 0, kUnavailable = 3, kBadInput = 4 };

struct Failure {
  int code;
  std::string message;
};

template <typename T>
T expect(core::Response r) {
  if (auto* e = std::get_if<core::ErrorReply>(&r.body)) throw Failure{kUnavailable, e->message};
  if (auto* v = std::get_if<T>(&r.body)) return std::move(*v);
  throw Failure{kUnavailable, "the node answered with an unexpected message"};
}

json members_json(const core::MembersReply& m) {
  json members = json::array();
  for (const auto& e : m.members)
    members.push_back(json{{"name", e.name},
                           {"uuid", e.uuid},
                           {"gcs_addr", e.gcs_addr},
                           {"client_addr", e.client_addr},
                           {"state", e.state},
                           {"last_committed", e.last_committed},
                           {"flow_control_pausing", e.pausing}});
  return json{{"view", {{"id", m.view_id}, {"primary", m.primary}, {"size", m.members.size()}}},
              {"members", members}};
}

void print_table(const core::MembersReply& m) {
  std::cout << fmt::format("view {}  {}  {} member{}\n", m.view_id,
                           m.primary ? "PRIMARY" : "NON-PRIMARY", m.members.size(),
                           m.members.size() == 1 ? "" : "s");
  std::vector<std::array<std::string, 7>> rows{
      {"NAME", "UUID", "GCS ADDR", "CLIENT ADDR", "STATE", "LAST COMMITTED", "FLOW"}};
  for (const auto& e : m.members)
    rows.push_back({e.name.empty() ? "?" : e.name, e.uuid, e.gcs_addr.empty() ? "?" : e.gcs_addr,
                    e.client_addr.empty() ? "?" : e.client_addr, e.state.empty() ? "?" : e.state,
                    std::to_string(e.last_committed), e.pausing ? "PAUSING" : "-"});
  std::array<size_t, 7> width{};
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      line += fmt::format("{:<{}}", r[i], i + 1 == r.size() ? 0 : width[i] + 2);
    std::cout << line << "\n";
  }
}

int cmd_members(const core::HostPort& node, bool as_json, double timeout_s) {
  core::Client client(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  client.connect(node);
  auto m = expect<core::MembersReply>(client.call(core::Request{0, core::MembersRequest{}}));
  if (as_json) {
    std::cout << members_json(m).dump() << "\n";
  } else {
    print_table(m);
  }
  return kOk;
}

// Long-polls the node for each view change it installs; stops when interrupted (exit 0) or when
// the node goes away (exit 3).
int cmd_watch(const core::HostPort& node, bool as_json) {
  core::Client client(std::chrono::hours(24 * 365));
  client.connect(node);
  uint64_t after = 0;
  for (;;) {
    auto views =
        expect<core::ViewsReply>(client.call(core::Request{0, core::WatchViewsRequest{after}}));
    for (const auto& v : views.changes) {
      if (as_json) {
        std::cout << json{{"number", v.number},
                          {"view", v.view_id},
                          {"primary", v.primary},
                          {"members", v.members},
                          {"last_committed", v.last_committed}}
                         .dump()
                  << std::endl;
      } else {
        std::cout << fmt::format("view {}  {}  [{}]  last committed {}", v.view_id,
                                 v.primary ? "PRIMARY" : "NON-PRIMARY", fmt::join(v.members, ", "),
                                 v.last_committed)
                  << std::endl;
      }
      after = std::max(after, v.number);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string node;
  bool as_json = false;
  double timeout_s = 10;
  CLI::App app{
      "gcs-tool: the membership of a tutti cluster as one node sees it.\n"
      "Exit codes: 0 ok, 3 node unreachable or error, 4 bad usage."};
  app.require_subcommand(1);
  app.add_option("--node", node, "HOST:PORT: any node's client address")->required();
  app.add_option("--timeout", timeout_s, "seconds to wait for the node (members)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto* members = app.add_subcommand(
      "members",
      "print the view (id, primary) and per member: name, uuid, gcs and client addresses, state, "
      "last committed seqno, and whether flow control pauses the group for it");
  members->add_flag("--json", as_json, "print one JSON document");
  auto* watch =
      app.add_subcommand("watch",
                         "print the current view, then each view change as it is installed, until "
                         "interrupted");
  watch->add_flag("--json", as_json, "print one JSON document per view change");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kBadInput;
  }
  try {
    const auto hp = core::parse_host_port(node);
    if (*members) return cmd_members(hp, as_json, timeout_s);
    if (*watch) return cmd_watch(hp, as_json);
  } catch (const Failure& f) {
    std::cerr << "gcs-tool: " << f.message << "\n";
    return f.code;
  } catch (const core::ClientError& e) {
    std::cerr << "gcs-tool: " << node << ": " << e.what() << "\n";
    return kUnavailable;
  } catch (const std::invalid_argument& e) {
    std::cerr << "gcs-tool: --node: " << e.what() << "\n";
    return kBadInput;
  }
  return kBadInput;
}
