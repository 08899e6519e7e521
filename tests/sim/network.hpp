// The simulated network both simulators run over: one-way links with delays that keep each link's
// order, links that break (losing what is in flight) and come back, partitions, and the death of
// a crashed node's connections. Deterministic: every draw comes from the simulation's generator.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "gcs/messages.hpp"

namespace tutti::sim {

using gcs::NodeId;
using gcs::Time;

inline uint64_t draw(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  return lo + rng() % (hi - lo + 1);
}
inline bool chance(std::mt19937_64& rng, double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}

class Network {
 public:
  explicit Network(std::mt19937_64& rng) : rng_(rng) {}

  struct Route {
    Time arrival;
    uint64_t epoch;  // the link's epoch when sent: a message of an older epoch is lost
  };
  // When a message sent now from one node to the other arrives, or nullopt when it is lost (a
  // partition or a broken link). Arrivals on one link keep their sending order.
  std::optional<Route> route(const NodeId& from, const NodeId& to, Time now) {
    if (side(from) != side(to)) return std::nullopt;
    Link& link = links_[{from, to}];
    if (link.broken_until > now) return std::nullopt;
    const Time delay = chance(rng_, 0.02) ? draw(rng_, 20, 120) : draw(rng_, 1, 15);
    const Time arrival = std::max(now + delay, link.last_arrival);
    link.last_arrival = arrival;
    return Route{arrival, link.epoch};
  }
  // Whether a message sent in epoch arrives: its link has not broken since.
  bool arrives(const NodeId& from, const NodeId& to, uint64_t epoch) {
    return links_[{from, to}].epoch == epoch;
  }
  // A crash: every connection of the node dies with what is in flight on it.
  void cut(const NodeId& node) {
    for (auto& [key, link] : links_)
      if (key.first == node || key.second == node) ++link.epoch;
  }
  // The link breaks until then, losing what is in flight; one way only with probability 1/2.
  void break_link(const NodeId& a, const NodeId& b, Time until) {
    for (auto key : {std::pair{a, b}, std::pair{b, a}}) {
      Link& l = links_[key];
      ++l.epoch;
      l.broken_until = until;
      if (chance(rng_, 0.5)) break;
    }
  }
  // A node on side g talks only to nodes on side g; every node starts on side 0.
  void set_side(const NodeId& node, int g) { sides_[node] = g; }
  int side(const NodeId& node) const {
    auto it = sides_.find(node);
    return it == sides_.end() ? 0 : it->second;
  }
  std::map<NodeId, int>& sides() { return sides_; }
  // Every node to one of 2 or 3 sides at random; returns " node:side ..." for the trace.
  std::string split_at_random() {
    const int groups = static_cast<int>(draw(rng_, 2, 3));
    std::string text;
    for (auto& [id, g] : sides_) {
      g = static_cast<int>(draw(rng_, 0, groups - 1));
      text += " " + id + ":" + std::to_string(g);
    }
    return text;
  }
  void heal_partition() {
    for (auto& [_, g] : sides_) g = 0;
  }
  void heal_links() {
    for (auto& [_, l] : links_) l.broken_until = 0;
  }

 private:
  struct Link {
    Time last_arrival = 0;
    uint64_t epoch = 0;
    Time broken_until = 0;
  };
  std::mt19937_64& rng_;
  std::map<std::pair<NodeId, NodeId>, Link> links_;
  std::map<NodeId, int> sides_;
};

}  // namespace tutti::sim
