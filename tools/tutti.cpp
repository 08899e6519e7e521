// tutti: the command-line client. See `tutti --help` and README.md.
// Exit codes: 0 ok, 1 key not found, 2 conflict (nothing written), 3 unavailable or outcome
// unknown, 4 bad usage or bad input, 5 transaction id used before for a different transaction.
#include <fmt/format.h>
#include <kj/encoding.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/client.hpp"
#include "core/failover.hpp"
#include "core/uuid.hpp"

namespace {

using namespace tutti;
using nlohmann::json;

enum Exit {
  kOk = 0,
  kNotFound = 1,
  kConflict = 2,
  kUnavailable = 3,
  kBadInput = 4,
  kTxnIdReused = 5
};

struct Failure {
  int code;
  std::string message;
};

const char* exit_name(int code) {
  switch (code) {
    case kUnavailable:
      return "unavailable";
    case kBadInput:
      return "bad_input";
    case kTxnIdReused:
      return "txn_id_reused";
    default:
      return "error";
  }
}

struct Options {
  std::string nodes;
  bool json = false;
  double timeout_s = 10;
  std::string txn_id;
};

// core/failover.hpp decides which node serves it.
core::Response request_any(const Options& o, core::Request request) {
  try {
    return core::request_any(core::parse_host_port_list(o.nodes), request,
                             std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
  } catch (const core::FailoverError& e) {
    throw Failure{kUnavailable, e.what()};
  }
}

int exit_code_for(core::ErrorCode code) {
  switch (code) {
    case core::ErrorCode::bad_request:
    case core::ErrorCode::too_large:
      return kBadInput;
    case core::ErrorCode::txn_id_reused:
      return kTxnIdReused;
    default:
      return kUnavailable;
  }
}

void throw_if_error(const core::Response& r) {
  if (auto* e = std::get_if<core::ErrorReply>(&r.body))
    throw Failure{exit_code_for(e->code), e->message};
}

template <typename T>
T expect(core::Response r) {
  throw_if_error(r);
  if (auto* v = std::get_if<T>(&r.body)) return std::move(*v);
  throw Failure{kUnavailable, "the node answered with an unexpected message"};
}

bool is_utf8(const std::string& bytes) {
  try {
    (void)json(bytes).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

std::string base64(const std::string& bytes) {
  auto b = kj::encodeBase64(
      kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()));
  return std::string(b.cStr());
}

// Keys and values are bytes: JSON carries them as text when they are UTF-8, else as base64, and
// says so in "<field>_encoding".
void put_bytes(json& j, const std::string& field, const std::string& bytes) {
  if (is_utf8(bytes)) {
    j[field] = bytes;
  } else {
    j[field] = base64(bytes);
    j[field + "_encoding"] = "base64";
  }
}

void put_value(json& j, const std::string& value) {
  put_bytes(j, "value", value);
}

// A list of keys: all as text, or (when any is not UTF-8) all as base64.
void put_keys(json& j, const std::string& field, const std::vector<std::string>& keys) {
  const bool text = std::all_of(keys.begin(), keys.end(), is_utf8);
  json list = json::array();
  for (const auto& k : keys) list.push_back(text ? k : base64(k));
  j[field] = std::move(list);
  if (!text) j[field + "_encoding"] = "base64";
}

std::string txn_id(const Options& o) {
  if (!o.txn_id.empty()) return o.txn_id;
  return core::uuid_text(core::random_uuid());
}

int print_commit(const Options& o, const core::CommitReply& c) {
  if (o.json) {
    json j{{"committed", c.committed}, {"seqno", c.seqno}};
    if (!c.committed) put_keys(j, "conflict", c.conflict_keys);
    if (c.duplicate) j["duplicate"] = true;
    std::cout << j.dump() << "\n";
  } else if (c.committed) {
    std::cout << c.seqno << "\n";
  }
  if (c.committed) return kOk;
  std::string keys;
  for (const auto& k : c.conflict_keys) keys += (keys.empty() ? "" : ", ") + k;
  std::cerr << "tutti: conflict: " << keys << " changed since read; nothing written\n";
  return kConflict;
}

int commit(const Options& o, core::CommitRequest req) {
  req.txn_id = txn_id(o);
  return print_commit(o,
                      expect<core::CommitReply>(request_any(o, core::Request{0, std::move(req)})));
}

int cmd_get(const Options& o, const std::string& key, bool local) {
  core::GetRequest g{key, local ? core::Consistency::local : core::Consistency::linearizable};
  const auto v = expect<core::ValueReply>(request_any(o, core::Request{0, g}));
  if (v.may_be_stale)
    std::cerr << "tutti: warning: local read from the node's own snapshot; it may be stale\n";
  if (o.json) {
    json j{{"version", v.version}};
    put_bytes(j, "key", key);
    if (v.found) {
      put_value(j, v.value);
    } else {
      j["value"] = nullptr;
    }
    if (v.may_be_stale) j["may_be_stale"] = true;
    std::cout << j.dump() << "\n";
  } else if (v.found) {
    std::cout << v.value << "\n";
  }
  if (!v.found) {
    if (!o.json) std::cerr << "tutti: key not found: " << key << "\n";
    return kNotFound;
  }
  return kOk;
}

int cmd_scan(const Options& o, const std::string& prefix, uint32_t limit, bool local) {
  core::ScanRequest s{prefix, limit,
                      local ? core::Consistency::local : core::Consistency::linearizable};
  const auto r = expect<core::ScanReply>(request_any(o, core::Request{0, s}));
  if (o.json) {
    json list = json::array();
    for (const auto& e : r.entries) {
      json j{{"version", e.version}};
      put_bytes(j, "key", e.key);
      put_value(j, e.value);
      list.push_back(std::move(j));
    }
    std::cout << list.dump() << "\n";
  } else {
    for (const auto& e : r.entries) std::cout << e.key << "\t" << e.value << "\n";
  }
  if (r.truncated)
    std::cerr << "tutti: warning: the node stopped at its reply size limit; scan from the last "
                 "key shown to see more\n";
  if (r.may_be_stale) std::cerr << "tutti: warning: local scan; it may be stale\n";
  return kOk;
}

std::string json_string(const json& j, const char* field, const std::string& where) {
  if (!j.contains(field) || !j[field].is_string())
    throw Failure{kBadInput, fmt::format("{}: \"{}\" must be a string", where, field)};
  return j[field].get<std::string>();
}

// A string field that may be base64 ("<field>_encoding": "base64"), as tutti --json prints bytes
// that are not UTF-8.
std::string json_bytes(const json& j, const std::string& field, const std::string& where) {
  std::string text = json_string(j, field.c_str(), where);
  const std::string enc_field = field + "_encoding";
  if (!j.contains(enc_field)) return text;
  if (!j[enc_field].is_string() || (j[enc_field] != "base64" && j[enc_field] != "text"))
    throw Failure{kBadInput,
                  fmt::format("{}: \"{}\" must be \"base64\" or \"text\"", where, enc_field)};
  if (j[enc_field] == "text") return text;
  auto decoded = kj::decodeBase64(kj::StringPtr(text.c_str()));
  if (decoded.hadErrors)
    throw Failure{kBadInput, fmt::format("{}: {} is not valid base64", where, field)};
  return std::string(reinterpret_cast<const char*>(decoded.begin()), decoded.size());
}

void check_fields(const json& j, std::initializer_list<const char*> allowed,
                  const std::string& where) {
  for (const auto& [k, v] : j.items())
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; }))
      throw Failure{kBadInput, fmt::format("{}: unknown field \"{}\"", where, k)};
}

core::CommitRequest parse_txn(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    throw Failure{kBadInput, std::string("txn: not valid JSON: ") + e.what()};
  }
  if (!doc.is_object()) throw Failure{kBadInput, "txn: the document must be a JSON object"};
  for (const auto& [k, v] : doc.items())
    if (k != "reads" && k != "writes")
      throw Failure{kBadInput, "txn: unknown field \"" + k + "\" (expected reads, writes)"};
  core::CommitRequest req;
  for (const auto& r : doc.value("reads", json::array())) {
    const std::string where = "txn: reads[" + std::to_string(req.reads.size()) + "]";
    if (!r.is_object() || !r.contains("version") || !r["version"].is_number_unsigned())
      throw Failure{kBadInput, where + ": needs \"key\" and an unsigned \"version\""};
    check_fields(r, {"key", "key_encoding", "version"}, where);
    req.reads.push_back(core::ReadItem{json_bytes(r, "key", where), r["version"].get<uint64_t>()});
  }
  for (const auto& w : doc.value("writes", json::array())) {
    const std::string where = "txn: writes[" + std::to_string(req.writes.size()) + "]";
    if (!w.is_object()) throw Failure{kBadInput, where + ": must be an object"};
    check_fields(w, {"key", "key_encoding", "value", "value_encoding", "delete"}, where);
    core::WriteItem item{json_bytes(w, "key", where), std::nullopt};
    if (w.contains("delete") && !w["delete"].is_boolean())
      throw Failure{kBadInput, where + ": \"delete\" must be true or false"};
    if (w.value("delete", false)) {
      if (w.contains("value")) throw Failure{kBadInput, where + ": both \"value\" and \"delete\""};
    } else {
      item.value = json_bytes(w, "value", where);
    }
    req.writes.push_back(std::move(item));
  }
  return req;
}

int cmd_txn(const Options& o, const std::string& file) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Failure{kBadInput, "txn: cannot read " + file};
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  return commit(o, parse_txn(text));
}

int cmd_status(const Options& o) {
  const auto s = expect<core::StatusReply>(request_any(o, core::Request{0, core::StatusRequest{}}));
  if (o.json) {
    json j{{"name", s.name},
           {"state", s.state},
           {"primary", s.primary},
           {"cluster_size", s.cluster_size},
           {"last_committed", s.last_committed},
           {"history_uuid", s.history_uuid},
           {"content_hash", s.content_hash},
           {"node_uuid", s.node_uuid},
           {"durability", s.durability},
           {"view_id", s.view_id},
           {"paused_by", s.paused_by},
           {"waiting_for", s.waiting_for},
           {"transfer", nullptr}};
    if (const auto& t = s.transfer; !t.kind.empty()) {
      // The joiner names its donor, the donor its joiner.
      j["transfer"] = json{{"kind", t.kind},  {t.role == "joiner" ? "donor" : "joiner", t.peer},
                           {"done", t.done},  {"total", t.total},
                           {"unit", t.unit},  {"rate", t.rate},
                           {"eta_s", t.eta_s}};
    }
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "name:           " << s.name << "\n"
              << "state:          " << s.state << "\n"
              << "primary:        " << (s.primary ? "yes" : "no") << "\n"
              << "cluster size:   " << s.cluster_size << "\n"
              << "last committed: " << s.last_committed << "\n"
              << "history uuid:   " << s.history_uuid << "\n"
              << "content hash:   " << s.content_hash << "\n"
              << "node uuid:      " << s.node_uuid << "\n"
              << "durability:     " << s.durability << "\n"
              << "view:           " << s.view_id << "\n"
              << "paused by:      "
              << (s.paused_by.empty() ? std::string("-")
                                      : fmt::format("{}", fmt::join(s.paused_by, ", ")))
              << "\n";
    if (!s.waiting_for.empty()) std::cout << "waiting for:    " << s.waiting_for << "\n";
    if (const auto& t = s.transfer; !t.kind.empty())
      std::cout << "transfer:       " << t.kind << (t.role == "joiner" ? " from " : " to ")
                << t.peer << ": " << t.done << " of " << t.total << " " << t.unit
                << fmt::format(", {:.0f} {}/s, about {:.0f} s left", t.rate, t.unit, t.eta_s)
                << "\n";
  }
  return kOk;
}

// The value of put: the argument, or the contents of --value-file (- for stdin), bytes as they are.
std::string read_value_file(const std::string& file) {
  std::string value;
  if (file == "-") {
    value.assign(std::istreambuf_iterator<char>(std::cin), {});
    return value;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Failure{kBadInput, "put: cannot read --value-file " + file};
  value.assign(std::istreambuf_iterator<char>(in), {});
  return value;
}

// A version is a whole number: CLI11 would take "-1" as 2^64-1.
uint64_t parse_version(const std::string& text) {
  if (text.empty() || text.size() > 20 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw Failure{
        kBadInput,
        "cas: VERSION must be a whole number >= 0 (0 = the key is absent), not '" + text + "'"};
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    throw Failure{kBadInput, "cas: VERSION '" + text + "' is out of range"};
  }
}

constexpr const char* kCommands = "get, put, del, cas, scan, txn, status";

// The first word that is not an option or an option's value: it must name a command.
std::optional<std::string> unknown_command(int argc, char** argv) {
  static const std::set<std::string> with_value = {"--node", "--timeout", "--txn-id"};
  static const std::set<std::string> commands = {"get",  "put", "del",   "cas",
                                                 "scan", "txn", "status"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (with_value.count(a)) {
      ++i;
      continue;
    }
    if (a.starts_with("-")) continue;
    if (commands.count(a)) return std::nullopt;
    return a;
  }
  return std::nullopt;
}

int run_command(int argc, char** argv) {
  Options o;
  CLI::App app{
      "tutti: read and write a tutti cluster.\n"
      "Exit codes: 0 ok, 1 key not found, 2 conflict (nothing written), 3 unavailable\n"
      "(no node reachable, not primary, busy, timed out, or outcome unknown), 4 bad usage or\n"
      "input, 5 the --txn-id was used before for a different transaction (nothing written)."};
  app.require_subcommand(1);
  app.add_option("--node", o.nodes,
                 "HOST:PORT[,HOST:PORT...] client addresses; the first that "
                 "answers serves")
      ->required();
  app.add_flag(
      "--json", o.json,
      "print JSON (keys and values that are not UTF-8 as base64, with "
      "\"key_encoding\"/\"value_encoding\":\"base64\"); errors as {\"error\",\"message\"}");
  app.add_option("--timeout", o.timeout_s, "seconds to wait for each node (0.001 to 3600)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(text, v) || !(v >= 0.001 && v <= 3600))
              return "must be a number of seconds from 0.001 to 3600, not '" + text + "'";
            return "";
          },
          "SECONDS"));
  app.add_option("--txn-id", o.txn_id,
                 "transaction id for put/del/cas/txn (default: random); retrying an id returns its "
                 "recorded outcome, reusing it for another transaction is refused (exit 5)")
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            return text.empty() ? "must not be empty (leave it out for a random id)" : "";
          },
          "ID"));

  std::string key, value, version_text, prefix, file, value_file;
  uint32_t limit = 1000;
  bool local = false;
  auto* get = app.add_subcommand("get", "print KEY's value (linearizable unless --local)");
  get->add_option("KEY", key)->required();
  get->add_flag("--local", local, "answer from the node's snapshot at once; may be stale");
  auto* put = app.add_subcommand("put", "write KEY=VALUE; prints the commit seqno");
  put->add_option("KEY", key)->required();
  auto* value_opt = put->add_option("VALUE", value, "the value (or --value-file)");
  auto* value_file_opt = put->add_option(
      "--value-file", value_file, "read the value from FILE, bytes as they are (- for stdin)");
  value_opt->excludes(value_file_opt);
  auto* del = app.add_subcommand("del", "delete KEY; prints the commit seqno");
  del->add_option("KEY", key)->required();
  auto* cas = app.add_subcommand("cas",
                                 "write VALUE only if KEY's version is still VERSION "
                                 "(0 = absent)");
  cas->add_option("KEY", key)->required();
  cas->add_option("VERSION", version_text)->required();
  cas->add_option("VALUE", value)->required();
  auto* scan = app.add_subcommand("scan", "print KEY<TAB>VALUE for keys starting with PREFIX");
  scan->add_option("PREFIX", prefix)->required();
  scan->add_option("--limit", limit, "at most this many keys")->capture_default_str();
  scan->add_flag("--local", local, "answer from the node's snapshot at once; may be stale");
  auto* txn = app.add_subcommand("txn",
                                 "commit the transaction in FILE (- for stdin): "
                                 "{\"reads\":[{\"key\",\"version\"}],\"writes\":[{\"key\","
                                 "\"value\"}|{\"key\",\"delete\":true}]}; keys and values may be "
                                 "base64 with \"key_encoding\"/\"value_encoding\":\"base64\"");
  txn->add_option("FILE", file)->required();
  auto* status = app.add_subcommand("status", "print the node's state");

  if (auto word = unknown_command(argc, argv)) {
    std::cerr << "tutti: unknown command '" << *word << "'; the commands are " << kCommands
              << " (tutti --help)\n";
    return kBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kBadInput;
  }
  try {
    core::parse_host_port_list(o.nodes);
    if (*get) return cmd_get(o, key, local);
    if (*put) {
      if (value_opt->count() == 0 && value_file_opt->count() == 0)
        throw Failure{kBadInput, "put: give VALUE, or --value-file FILE (- for stdin)"};
      if (value_file_opt->count() > 0) value = read_value_file(value_file);
      return commit(o, core::CommitRequest{"", {}, {core::WriteItem{key, value}}});
    }
    if (*del) return commit(o, core::CommitRequest{"", {}, {core::WriteItem{key, std::nullopt}}});
    if (*cas)
      return commit(o, core::CommitRequest{"",
                                           {core::ReadItem{key, parse_version(version_text)}},
                                           {core::WriteItem{key, value}}});
    if (*scan) return cmd_scan(o, prefix, limit, local);
    if (*txn) return cmd_txn(o, file);
    if (*status) return cmd_status(o);
  } catch (const Failure& f) {
    std::cerr << "tutti: " << f.message << "\n";
    if (o.json)
      std::cout << json{{"error", exit_name(f.code)}, {"message", f.message}}.dump() << "\n";
    return f.code;
  } catch (const std::invalid_argument& e) {
    std::cerr << "tutti: --node: " << e.what() << "\n";
    return kBadInput;
  }
  return kBadInput;
}

}  // namespace

int main(int argc, char** argv) {
  return run_command(argc, argv);
}
