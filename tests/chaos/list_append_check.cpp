// The list-append checker (checks.hpp). The lists at the end give each key's version order, as
// appends to a list reveal it in Elle (Kingsbury and Alvaro, "Elle: inferring isolation
// anomalies from experimental observations"); from it and the reads follow the dependencies
// whose cycles serializability forbids.
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <unordered_map>

#include "chaos/checks.hpp"

namespace tutti::chaos {
namespace {

constexpr size_t kMaxViolations = 50;
constexpr size_t kMaxCycles = 3;

std::string show(const std::vector<Element>& list) {
  if (list.size() <= 6) return fmt::format("[{}]", fmt::join(list, " "));
  return fmt::format("[{} {} {} ... {} {} {}] ({} elements)", list[0], list[1], list[2],
                     list[list.size() - 3], list[list.size() - 2], list.back(), list.size());
}

struct Writer {
  size_t txn = 0;
  size_t append = 0;  // which of its appends
  size_t index = 0;   // where in that append's elements
};

struct Edge {
  size_t to = 0;
  const char* kind = "";  // ww, wr or rw
  const std::string* key = nullptr;
};

class ListChecker {
 public:
  ListChecker(const std::vector<ListTxn>& txns,
              const std::map<std::string, std::vector<Element>>& end)
      : txns_(txns), end_(end), visible_(txns.size(), false) {}

  std::vector<std::string> run() {
    index_writers();
    check_end_lists();
    for (size_t t = 0; t < txns_.size(); ++t) {
      const ListTxn& txn = txns_[t];
      visible_[t] =
          txn.outcome == Outcome::ok || (txn.outcome == Outcome::unknown && any_at_end(t));
      for (const auto& r : txn.reads) check_read(t, r);
      if (!txn.scan) check_appends(t);
    }
    check_cycles();
    return std::move(violations_);
  }

 private:
  void violation(std::string what) {
    if (violations_.size() < kMaxViolations) violations_.push_back("list-append: " + what);
  }
  const std::vector<Element>& end_list(const std::string& key) const {
    static const std::vector<Element> none;
    auto it = end_.find(key);
    return it == end_.end() ? none : it->second;
  }
  std::optional<size_t> position(const std::string& key, Element e) const {
    auto k = positions_.find(key);
    if (k == positions_.end()) return std::nullopt;
    auto it = k->second.find(e);
    return it == k->second.end() ? std::nullopt : std::optional<size_t>(it->second);
  }
  const Writer* writer(Element e) const {
    auto it = writers_.find(e);
    return it == writers_.end() ? nullptr : &it->second;
  }
  std::string name(size_t t) const {
    return txns_[t].id.empty() ? fmt::format("#{}", t) : txns_[t].id;
  }

  void index_writers() {
    for (size_t t = 0; t < txns_.size(); ++t)
      for (size_t a = 0; a < txns_[t].appends.size(); ++a)
        for (size_t i = 0; i < txns_[t].appends[a].elements.size(); ++i)
          if (!writers_.emplace(txns_[t].appends[a].elements[i], Writer{t, a, i}).second)
            throw std::logic_error(fmt::format("list-append: the workload appended {} twice",
                                               txns_[t].appends[a].elements[i]));
  }

  // No garbage, no duplicate, no aborted write; each key's list fixes its elements' positions.
  void check_end_lists() {
    for (const auto& [key, list] : end_) {
      auto& pos = positions_[key];
      for (size_t p = 0; p < list.size(); ++p) {
        const Element e = list[p];
        if (!pos.emplace(e, p).second)
          violation(fmt::format("{} holds {} twice at the end", key, e));
        const Writer* w = writer(e);
        if (!w) {
          violation(fmt::format("{} holds {} at the end, which no transaction appended", key, e));
        } else if (txns_[w->txn].appends[w->append].key != key) {
          violation(fmt::format("{} holds {} at the end, which {} appended to {}", key, e,
                                name(w->txn), txns_[w->txn].appends[w->append].key));
        } else if (txns_[w->txn].outcome == Outcome::failed) {
          violation(fmt::format("{} holds {} at the end, appended by {}, which failed{}", key, e,
                                name(w->txn), txns_[w->txn].conflict ? " certification" : ""));
        }
      }
    }
  }

  bool any_at_end(size_t t) const {
    for (const auto& a : txns_[t].appends)
      for (Element e : a.elements)
        if (position(a.key, e)) return true;
    return false;
  }

  // A read saw a prefix of the key's list at the end, of elements that were written, not in the
  // middle of one transaction's append.
  void check_read(size_t t, const ListRead& r) {
    const auto& end = end_list(r.key);
    if (r.list.size() > end.size() || !std::equal(r.list.begin(), r.list.end(), end.begin())) {
      violation(fmt::format("{} read {} = {}, not a prefix of its list at the end {}", name(t),
                            r.key, show(r.list), show(end)));
    }
    for (Element e : r.list) {
      const Writer* w = writer(e);
      if (!w) {
        violation(
            fmt::format("{} read {} in {}, which no transaction appended", name(t), e, r.key));
      } else if (txns_[w->txn].outcome == Outcome::failed) {
        violation(fmt::format("{} read {} in {}, appended by {}, which failed (aborted read)",
                              name(t), e, r.key, name(w->txn)));
      }
    }
    if (r.list.empty()) return;
    if (const Writer* w = writer(r.list.back());
        w && w->index + 1 < txns_[w->txn].appends[w->append].elements.size())
      violation(
          fmt::format("{} read {} ending in {}, in the middle of {}'s append of {} "
                      "(intermediate read)",
                      name(t), r.key, r.list.back(), name(w->txn),
                      show(txns_[w->txn].appends[w->append].elements)));
  }

  // A visible transaction's appends are at the end whole, right after what it read of each key;
  // an invisible one's not at all.
  void check_appends(size_t t) {
    const ListTxn& txn = txns_[t];
    for (const auto& a : txn.appends) {
      if (a.elements.empty()) continue;
      const auto first = position(a.key, a.elements[0]);
      for (size_t i = 0; i < a.elements.size(); ++i) {
        const auto p = position(a.key, a.elements[i]);
        if (!visible_[t] || (p && first && *p == *first + i)) continue;
        if (txn.outcome == Outcome::ok && !p) {
          violation(
              fmt::format("{} was acknowledged, but {} it appended to {} is not there at "
                          "the end (lost update)",
                          name(t), a.elements[i], a.key));
        } else if (!p) {
          violation(
              fmt::format("{} (outcome unknown) is at the end only in part: {} of {} is "
                          "missing",
                          name(t), a.elements[i], a.key));
        } else {
          violation(
              fmt::format("{}'s append of {} to {} is not together at the end: {} at "
                          "position {}",
                          name(t), show(a.elements), a.key, a.elements[i], *p));
        }
      }
      if (!visible_[t] || !first) continue;
      auto read = std::find_if(txn.reads.begin(), txn.reads.end(),
                               [&](const ListRead& r) { return r.key == a.key; });
      if (read != txn.reads.end() && *first != read->list.size())
        violation(
            fmt::format("{} read {} elements of {} and appended {}, which is at position "
                        "{} at the end (lost update)",
                        name(t), read->list.size(), a.key, a.elements[0], *first));
    }
  }

  void add_edge(size_t from, size_t to, const char* kind, const std::string& key) {
    if (from == to || !visible_[from] || !visible_[to]) return;
    edges_[from].push_back(Edge{to, kind, &key});
  }

  void build_graph() {
    edges_.assign(txns_.size(), {});
    for (const auto& [key, list] : end_)
      for (size_t p = 1; p < list.size(); ++p) {
        const Writer *a = writer(list[p - 1]), *b = writer(list[p]);
        if (a && b) add_edge(a->txn, b->txn, "ww", key);
      }
    for (size_t t = 0; t < txns_.size(); ++t) {
      if (!visible_[t]) continue;
      for (const auto& r : txns_[t].reads) {
        const auto& end = end_list(r.key);
        if (!r.list.empty())
          if (const Writer* w = writer(r.list.back())) add_edge(w->txn, t, "wr", r.key);
        if (r.list.size() < end.size())
          if (const Writer* w = writer(end[r.list.size()])) add_edge(t, w->txn, "rw", r.key);
      }
    }
  }

  // Tarjan's strongly connected components, without recursion (the graph may be long chains).
  std::vector<std::vector<size_t>> components() const {
    const size_t n = txns_.size();
    constexpr size_t unseen = SIZE_MAX;
    std::vector<size_t> index(n, unseen), low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<size_t> stack;
    std::vector<std::pair<size_t, size_t>> calls;  // node, next edge to follow
    std::vector<std::vector<size_t>> out;
    size_t next = 0;
    for (size_t root = 0; root < n; ++root) {
      if (!visible_[root] || index[root] != unseen) continue;
      const auto enter = [&](size_t v) {
        index[v] = low[v] = next++;
        stack.push_back(v);
        on_stack[v] = true;
        calls.emplace_back(v, 0);
      };
      enter(root);
      while (!calls.empty()) {
        const size_t v = calls.back().first;
        if (size_t& i = calls.back().second; i < edges_[v].size()) {
          const size_t w = edges_[v][i++].to;
          if (index[w] == unseen) {
            enter(w);
          } else if (on_stack[w]) {
            low[v] = std::min(low[v], index[w]);
          }
          continue;
        }
        calls.pop_back();
        if (!calls.empty()) low[calls.back().first] = std::min(low[calls.back().first], low[v]);
        if (low[v] != index[v]) continue;
        std::vector<size_t> component;
        size_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          component.push_back(w);
        } while (w != v);
        if (component.size() > 1) out.push_back(std::move(component));
      }
    }
    return out;
  }

  // One cycle through the component's first node, found breadth-first inside it.
  std::string describe_cycle(const std::vector<size_t>& component) const {
    std::unordered_map<size_t, bool> member;
    for (size_t v : component) member[v] = true;
    const size_t start = component.front();
    std::unordered_map<size_t, std::pair<size_t, const Edge*>> came_from;
    std::deque<size_t> queue{start};
    std::optional<std::pair<size_t, const Edge*>> closing;
    while (!queue.empty() && !closing) {
      const size_t v = queue.front();
      queue.pop_front();
      for (const Edge& e : edges_[v]) {
        if (!member.count(e.to)) continue;
        if (e.to == start) {
          closing.emplace(v, &e);
          break;
        }
        if (came_from.emplace(e.to, std::make_pair(v, &e)).second) queue.push_back(e.to);
      }
    }
    if (!closing) return fmt::format("{} transactions", component.size());  // cannot happen
    std::vector<std::string> steps;
    steps.push_back(
        fmt::format("-{} {}-> {}", closing->second->kind, *closing->second->key, name(start)));
    for (size_t v = closing->first; v != start; v = came_from.at(v).first) {
      const Edge* e = came_from.at(v).second;
      steps.push_back(fmt::format("-{} {}-> {}", e->kind, *e->key, name(v)));
    }
    std::reverse(steps.begin(), steps.end());
    return fmt::format("{} {}", name(start), fmt::join(steps, " "));
  }

  void check_cycles() {
    build_graph();
    const auto found = components();
    for (size_t i = 0; i < found.size() && i < kMaxCycles; ++i)
      violation(
          fmt::format("a dependency cycle among {} committed transactions (not "
                      "serializable): {}",
                      found[i].size(), describe_cycle(found[i])));
    if (found.size() > kMaxCycles)
      violation(fmt::format("{} more dependency cycles", found.size() - kMaxCycles));
  }

  const std::vector<ListTxn>& txns_;
  const std::map<std::string, std::vector<Element>>& end_;
  std::vector<bool> visible_;  // committed, or of unknown outcome and at the end
  std::unordered_map<Element, Writer> writers_;
  std::map<std::string, std::unordered_map<Element, size_t>> positions_;
  std::vector<std::vector<Edge>> edges_;
  std::vector<std::string> violations_;
};

}  // namespace

std::vector<std::string> check_list_append(const std::vector<ListTxn>& txns,
                                           const std::map<std::string, std::vector<Element>>& end) {
  return ListChecker(txns, end).run();
}

}  // namespace tutti::chaos
