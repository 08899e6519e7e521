// The history checkers of tutti-chaos for its list-append and register workloads: pure functions
// of what the clients recorded (and, for list-append, what the keys hold at the end), so that
// unit tests can hand them histories that must pass and ones that must not.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace tutti::chaos {

// A commit as its client saw it: acknowledged, refused before it was replicated, or never told.
enum class Outcome { ok, failed, unknown };

// ---- list-append (an Elle-style check of serializability) ----

using Element = uint64_t;  // unique across the run: no two appends add the same element

struct ListRead {
  std::string key;
  std::vector<Element> list;  // absent key: empty
};
struct ListAppend {
  std::string key;
  std::vector<Element> elements;  // added to the end of the list, in this order, in one write
};

// One transaction: it read some keys (one linearizable get each; every key it appends to is read
// first), then committed with those reads' versions as its read-set, so certification refused it
// if any of them had changed by its seqno. A scan is a read-only transaction whose reads are one
// snapshot.
struct ListTxn {
  std::string id;  // its transaction id, for the messages
  Outcome outcome = Outcome::unknown;
  bool scan = false;
  bool conflict = false;  // failed because certification refused it (for the report)
  std::vector<ListRead> reads;
  std::vector<ListAppend> appends;
};

// Checks a list-append history against the lists every node holds at the end (the version order
// of each key). Violations found, each a sentence; empty when the history is serializable:
//  - every element at the end was appended by some transaction that did not fail, once, and a
//    transaction's elements for a key sit together in its order (no garbage, no aborted write);
//  - every acknowledged append is there; a transaction of unknown outcome is there whole or not
//    at all (no lost update, no partial transaction);
//  - every list any client read is a prefix of the key's list at the end and holds no element of
//    a failed transaction, and does not end inside one transaction's append (no incompatible
//    order, aborted read or intermediate read);
//  - a committed transaction's appends follow exactly what it read (no lost update);
//  - the write-write, write-read and read-write dependencies between the committed transactions
//    and the scans form no cycle (serializable; one cycle is described per strongly connected
//    component, at most a few).
std::vector<std::string> check_list_append(const std::vector<ListTxn>& txns,
                                           const std::map<std::string, std::vector<Element>>& end);

// ---- registers (linearizability of each key's read / write / compare-and-set history) ----

using Value = uint64_t;  // unique per write; 0: the key is absent

struct RegisterOp {
  enum class Kind { read, write, cas };
  std::string key;
  Kind kind = Kind::read;
  Value value = 0;     // read: what it returned; write and cas: what it writes
  Value expected = 0;  // cas: the value it requires
  // read and write: ok. cas: ok (it wrote), failed (certification refused it: the key did not
  // hold `expected` at its point), unknown (either, or not at all, at any time after `invoked`).
  // A write of unknown outcome likewise. Operations refused before replication are left out.
  Outcome outcome = Outcome::ok;
  double invoked = 0;                                         // seconds, one clock for every client
  double returned = std::numeric_limits<double>::infinity();  // unknown: never
};

struct RegisterCheck {
  std::vector<std::string> violations;  // keys whose history no linearization explains
  std::vector<std::string> undecided;   // keys the search gave up on (too big): not checked
  size_t keys = 0, ops = 0;
};

// Checks each key's history for linearizability (Wing and Gong's search with Lowe's memo, as
// Porcupine does). An operation of unknown outcome that nothing observed is left out (it may not
// have taken effect); one whose value was read took effect, at some time after its invocation.
// max_steps bounds the search of one key.
RegisterCheck check_registers(const std::vector<RegisterOp>& ops, uint64_t max_steps = 20'000'000);

}  // namespace tutti::chaos
