#include "chaos/netns.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <filesystem>
#include <stdexcept>

#include "process.hpp"

namespace tutti::chaos {

namespace {

// posix_spawn does not search PATH, and root's PATH may lack sbin: where name is, or empty.
std::string find_program(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
    if (::access((dir + name).c_str(), X_OK) == 0) return dir + name;
  return {};
}

}  // namespace

const std::string& ip_bin() {
  static const std::string path = find_program("ip");
  return path;
}

const std::string& tc_bin() {
  static const std::string path = find_program("tc");
  return path;
}

void run_or_throw(const std::vector<std::string>& argv) {
  auto r = test::run(argv);
  if (r.code == 0) return;
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  throw std::runtime_error(fmt::format("chaos: `{}` failed: {}", cmd, r.err));
}

namespace {

test::CliResult ip_run(std::vector<std::string> args) {
  args.insert(args.begin(), ip_bin());
  return test::run(args);
}

void ip_must(std::vector<std::string> args) {
  args.insert(args.begin(), ip_bin());
  run_or_throw(args);
}

}  // namespace

std::string netns_unavailable() {
  if (::geteuid() != 0) return "not root: network namespaces need it";
  if (ip_bin().empty()) return "no `ip` command (iproute2)";
  const std::string probe = fmt::format("tcprobe{}", ::getpid() % 100000);
  if (ip_run({"netns", "add", probe}).code != 0) return "`ip netns add` fails here";
  ip_run({"netns", "del", probe});
  return {};
}

// Names and subnet come from the same 14 bits of the run id, so two runs on one machine (the
// suite runs two at once) that do not clash by name do not share a subnet either.
Topology::Topology(int nodes, uint32_t run)
    : nodes_(nodes),
      prefix_(fmt::format("tc{:04x}", run & 0x3fff)),
      subnet_(fmt::format("10.{}.{}.", 192 + ((run >> 8) & 0x3f), run & 0xff)) {
  try {
    ip_must({"link", "add", prefix_ + "br", "type", "bridge"});
    bridge_made_ = true;
    ip_must({"addr", "add", subnet_ + "254/24", "dev", prefix_ + "br"});
    ip_must({"link", "set", prefix_ + "br", "up"});
    for (int i = 1; i <= nodes; ++i) {
      ip_must({"netns", "add", ns(i)});
      namespaces_made_.push_back(ns(i));
      ip_must({"link", "add", host_end(i), "type", "veth", "peer", "name", "eth0", "netns", ns(i)});
      ip_must({"link", "set", host_end(i), "master", prefix_ + "br"});
      ip_must({"link", "set", host_end(i), "up"});
      ip_must({"netns", "exec", ns(i), ip_bin(), "link", "set", "lo", "up"});
      ip_must({"netns", "exec", ns(i), ip_bin(), "addr", "add", ip(i) + "/24", "dev", "eth0"});
      ip_must({"netns", "exec", ns(i), ip_bin(), "link", "set", "eth0", "up"});
    }
    // netem and tbf are modules a kernel may lack: probe them on one node's loopback.
    const auto probe = [&](std::vector<std::string> qdisc) {
      if (tc_bin().empty()) return false;
      std::vector<std::string> add = {ip_bin(), "netns", "exec", ns(1), tc_bin(),
                                      "qdisc",  "add",   "dev",  "lo",  "root"};
      add.insert(add.end(), qdisc.begin(), qdisc.end());
      if (test::run(add).code != 0) return false;
      test::run({ip_bin(), "netns", "exec", ns(1), tc_bin(), "qdisc", "del", "dev", "lo", "root"});
      return true;
    };
    netem_ = probe({"netem", "delay", "1ms"});
    tbf_ = probe({"tbf", "rate", "1mbit", "burst", "16kb", "latency", "50ms"});
  } catch (...) {
    teardown();
    throw;
  }
}

Topology::~Topology() {
  teardown();
}

// A namespace's veth end goes with it; the host end with the namespace too.
void Topology::teardown() {
  for (const auto& n : namespaces_made_) ip_run({"netns", "del", n});
  namespaces_made_.clear();
  if (bridge_made_) ip_run({"link", "del", prefix_ + "br"});
  bridge_made_ = false;
}

std::string Topology::ns(int node) const {
  return prefix_ + "n" + std::to_string(node);
}
std::string Topology::ip(int node) const {
  return subnet_ + std::to_string(node);
}

void Topology::cut(int a, int b) {
  if (!cut_.insert({a, b}).second) return;
  ip_must({"netns", "exec", ns(a), ip_bin(), "route", "add", "blackhole", ip(b) + "/32"});
}

void Topology::partition(const std::vector<std::vector<int>>& sides) {
  heal();
  for (size_t s = 0; s < sides.size(); ++s)
    for (size_t t = 0; t < sides.size(); ++t)
      if (s != t)
        for (int a : sides[s])
          for (int b : sides[t]) cut(a, b);
}

void Topology::heal() {
  for (const auto& [a, b] : cut_)
    ip_run({"netns", "exec", ns(a), ip_bin(), "route", "del", "blackhole", ip(b) + "/32"});
  cut_.clear();
  for (int n : slowed_) {
    test::run({ip_bin(), "netns", "exec", ns(n), tc_bin(), "qdisc", "del", "dev", "eth0", "root"});
    test::run({tc_bin(), "qdisc", "del", "dev", host_end(n), "root"});
  }
  slowed_.clear();
}

std::string Topology::host_end(int node) const {
  return prefix_ + "v" + std::to_string(node);
}

void Topology::slow(int node, const LinkFault& f) {
  if (!netem_ && !tbf_)
    throw std::logic_error("chaos: slow() where the kernel has no netem or tbf");
  std::vector<std::string> qdisc;
  if (netem_) {
    qdisc = {"netem",
             "delay",
             fmt::format("{}ms", f.delay_ms),
             fmt::format("{}ms", f.delay_ms / 2),
             "loss",
             fmt::format("{}%", f.loss_percent)};
  } else {
    qdisc = {"tbf",  "rate",    fmt::format("{}kbit", f.rate_kbit), "burst",
             "16kb", "latency", fmt::format("{}ms", f.delay_ms)};
  }
  slowed_.insert(node);
  std::vector<std::string> inside = {ip_bin(), "netns",   "exec", ns(node), tc_bin(),
                                     "qdisc",  "replace", "dev",  "eth0",   "root"};
  std::vector<std::string> outside = {tc_bin(), "qdisc", "replace", "dev", host_end(node), "root"};
  inside.insert(inside.end(), qdisc.begin(), qdisc.end());
  outside.insert(outside.end(), qdisc.begin(), qdisc.end());
  run_or_throw(inside);
  run_or_throw(outside);
}

}  // namespace tutti::chaos
