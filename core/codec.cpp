#include "core/codec.hpp"

#include <fmt/format.h>

#include "core/codec_transfer.hpp"
#include "core/protocol/tutti.capnp.h"
#include "gcs/capnp_bytes.hpp"
#include "gcs/invariant.hpp"

namespace tutti::core {
namespace {

using capnp_bytes::as_data;
using capnp_bytes::as_text;
using capnp_bytes::first_segment_words;
using capnp_bytes::str;
using capnp_bytes::to_bytes;

template <typename Root, typename Fn>
auto with_reader(std::string_view bytes, std::string_view what, Fn&& fn) {
  return capnp_bytes::with_reader<DecodeError, Root>(bytes, what, std::forward<Fn>(fn));
}

size_t writeset_bytes(const std::vector<ReadItem>& reads, const std::vector<WriteItem>& writes) {
  size_t n = 0;
  for (const auto& r : reads) n += r.key.size() + 24;
  for (const auto& w : writes) n += w.key.size() + (w.value ? w.value->size() : 0) + 32;
  return n;
}

void set_read_items(capnp::List<wire::ReadItem>::Builder out, const std::vector<ReadItem>& in) {
  for (size_t i = 0; i < in.size(); ++i) {
    out[i].setKey(as_data(in[i].key));
    out[i].setVersion(in[i].version);
  }
}

void set_write_items(capnp::List<wire::WriteItem>::Builder out, const std::vector<WriteItem>& in) {
  for (size_t i = 0; i < in.size(); ++i) {
    out[i].setKey(as_data(in[i].key));
    if (in[i].value) {
      out[i].setValue(as_data(*in[i].value));
    } else {
      out[i].setDelete();
    }
  }
}

std::vector<ReadItem> read_items(capnp::List<wire::ReadItem>::Reader in) {
  std::vector<ReadItem> out;
  out.reserve(in.size());
  for (auto r : in) out.push_back(ReadItem{str(r.getKey()), r.getVersion()});
  return out;
}

std::vector<WriteItem> write_items(capnp::List<wire::WriteItem>::Reader in) {
  std::vector<WriteItem> out;
  out.reserve(in.size());
  for (auto w : in) {
    WriteItem item{str(w.getKey()), std::nullopt};
    if (w.isValue()) {
      item.value = str(w.getValue());
    } else if (!w.isDelete()) {
      throw DecodeError("write item is neither a value nor a delete");
    }
    out.push_back(std::move(item));
  }
  return out;
}

void check_version(uint16_t got, uint16_t want, std::string_view what) {
  if (got != want)
    throw VersionError(
        fmt::format("{} has version {}; this build speaks version {}", what, got, want));
}

wire::Consistency to_wire(Consistency c) {
  return c == Consistency::local ? wire::Consistency::LOCAL : wire::Consistency::LINEARIZABLE;
}
Consistency from_wire(wire::Consistency c) {
  if (c == wire::Consistency::LOCAL) return Consistency::local;
  if (c == wire::Consistency::LINEARIZABLE) return Consistency::linearizable;
  throw DecodeError("unknown read consistency");
}

}  // namespace

// ---- requests ----

std::string encode_request(const Request& request) {
  size_t hint = 0;
  if (auto* c = std::get_if<CommitRequest>(&request.body))
    hint = c->txn_id.size() + writeset_bytes(c->reads, c->writes);
  capnp::MallocMessageBuilder message(first_segment_words(hint));
  auto root = message.initRoot<wire::Request>();
  root.setProtocolVersion(kProtocolVersion);
  root.setId(request.id);
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, GetRequest>) {
          auto get = root.initGet();
          get.setKey(as_data(body.key));
          get.setConsistency(to_wire(body.consistency));
        } else if constexpr (std::is_same_v<T, ScanRequest>) {
          auto scan = root.initScan();
          scan.setPrefix(as_data(body.prefix));
          scan.setLimit(body.limit);
          scan.setConsistency(to_wire(body.consistency));
        } else if constexpr (std::is_same_v<T, CommitRequest>) {
          auto commit = root.initCommit();
          commit.setTxnId(as_data(body.txn_id));
          set_read_items(commit.initReads(body.reads.size()), body.reads);
          set_write_items(commit.initWrites(body.writes.size()), body.writes);
        } else if constexpr (std::is_same_v<T, MembersRequest>) {
          root.setMembers();
        } else if constexpr (std::is_same_v<T, WatchViewsRequest>) {
          root.setWatchViews(body.after);
        } else if constexpr (std::is_same_v<T, TransferRequest>) {
          codec::set_transfer_request(root.initTransfer(), body);
        } else {
          root.setStatus();
        }
      },
      request.body);
  return to_bytes(message);
}

Request decode_request(std::string_view payload) {
  return with_reader<wire::Request>(payload, "request", [](wire::Request::Reader r) {
    check_version(r.getProtocolVersion(), kProtocolVersion, "request");
    Request out{r.getId(), StatusRequest{}};
    switch (r.which()) {
      case wire::Request::GET:
        out.body = GetRequest{str(r.getGet().getKey()), from_wire(r.getGet().getConsistency())};
        break;
      case wire::Request::SCAN: {
        auto s = r.getScan();
        out.body = ScanRequest{str(s.getPrefix()), s.getLimit(), from_wire(s.getConsistency())};
        break;
      }
      case wire::Request::COMMIT: {
        auto c = r.getCommit();
        out.body =
            CommitRequest{str(c.getTxnId()), read_items(c.getReads()), write_items(c.getWrites())};
        break;
      }
      case wire::Request::STATUS:
        break;
      case wire::Request::MEMBERS:
        out.body = MembersRequest{};
        break;
      case wire::Request::WATCH_VIEWS:
        out.body = WatchViewsRequest{r.getWatchViews()};
        break;
      case wire::Request::TRANSFER:
        out.body = codec::transfer_request_from(r.getTransfer());
        break;
      default:
        throw DecodeError("unknown request type");
    }
    return out;
  });
}

// ---- responses ----

namespace {

wire::ErrorCode to_wire(ErrorCode c) {
  switch (c) {
    case ErrorCode::bad_request:
      return wire::ErrorCode::BAD_REQUEST;
    case ErrorCode::unavailable:
      return wire::ErrorCode::UNAVAILABLE;
    case ErrorCode::not_primary:
      return wire::ErrorCode::NOT_PRIMARY;
    case ErrorCode::too_large:
      return wire::ErrorCode::TOO_LARGE;
    case ErrorCode::storage:
      return wire::ErrorCode::STORAGE;
    case ErrorCode::internal:
      return wire::ErrorCode::INTERNAL;
    case ErrorCode::unsupported_version:
      return wire::ErrorCode::UNSUPPORTED_VERSION;
    case ErrorCode::busy:
      return wire::ErrorCode::BUSY;
    case ErrorCode::txn_id_reused:
      return wire::ErrorCode::TXN_ID_REUSED;
  }
  return wire::ErrorCode::INTERNAL;
}

ErrorCode from_wire(wire::ErrorCode c) {
  switch (c) {
    case wire::ErrorCode::BAD_REQUEST:
      return ErrorCode::bad_request;
    case wire::ErrorCode::UNAVAILABLE:
      return ErrorCode::unavailable;
    case wire::ErrorCode::NOT_PRIMARY:
      return ErrorCode::not_primary;
    case wire::ErrorCode::TOO_LARGE:
      return ErrorCode::too_large;
    case wire::ErrorCode::STORAGE:
      return ErrorCode::storage;
    case wire::ErrorCode::INTERNAL:
      return ErrorCode::internal;
    case wire::ErrorCode::UNSUPPORTED_VERSION:
      return ErrorCode::unsupported_version;
    case wire::ErrorCode::BUSY:
      return ErrorCode::busy;
    case wire::ErrorCode::TXN_ID_REUSED:
      return ErrorCode::txn_id_reused;
  }
  throw DecodeError("unknown error code");
}

void set_status(wire::Response::Status::Builder out, const StatusReply& s) {
  out.setName(as_text(s.name));
  out.setState(as_text(s.state));
  out.setPrimary(s.primary);
  out.setClusterSize(s.cluster_size);
  out.setLastCommitted(s.last_committed);
  out.setHistoryUuid(as_text(s.history_uuid));
  out.setContentHash(as_text(s.content_hash));
  out.setNodeUuid(as_text(s.node_uuid));
  out.setDurability(as_text(s.durability));
  out.setViewId(as_text(s.view_id));
  auto paused = out.initPausedBy(s.paused_by.size());
  for (size_t i = 0; i < s.paused_by.size(); ++i) paused.set(i, as_text(s.paused_by[i]));
  out.setWaitingFor(as_text(s.waiting_for));
  if (!s.transfer.kind.empty()) codec::set_progress(out.initTransfer(), s.transfer);
}

StatusReply status_from(wire::Response::Status::Reader s) {
  StatusReply out{str(s.getName()),
                  str(s.getState()),
                  s.getPrimary(),
                  s.getClusterSize(),
                  s.getLastCommitted(),
                  str(s.getHistoryUuid()),
                  str(s.getContentHash()),
                  str(s.getNodeUuid()),
                  str(s.getDurability()),
                  str(s.getViewId()),
                  {},
                  str(s.getWaitingFor()),
                  {}};
  for (auto p : s.getPausedBy()) out.paused_by.push_back(str(p));
  if (s.hasTransfer()) out.transfer = codec::progress_from(s.getTransfer());
  return out;
}

void set_members(wire::Response::Members::Builder out, const MembersReply& m) {
  out.setViewId(as_text(m.view_id));
  out.setPrimary(m.primary);
  auto list = out.initMembers(m.members.size());
  for (size_t i = 0; i < m.members.size(); ++i) {
    const MemberEntry& e = m.members[i];
    list[i].setName(as_text(e.name));
    list[i].setUuid(as_text(e.uuid));
    list[i].setGcsAddr(as_text(e.gcs_addr));
    list[i].setClientAddr(as_text(e.client_addr));
    list[i].setState(as_text(e.state));
    list[i].setLastCommitted(e.last_committed);
    list[i].setPausing(e.pausing);
  }
}

MembersReply members_from(wire::Response::Members::Reader r) {
  MembersReply out{str(r.getViewId()), r.getPrimary(), {}};
  for (auto e : r.getMembers())
    out.members.push_back(MemberEntry{str(e.getName()), str(e.getUuid()), str(e.getGcsAddr()),
                                      str(e.getClientAddr()), str(e.getState()),
                                      e.getLastCommitted(), e.getPausing()});
  return out;
}

void set_views(wire::Response::Views::Builder out, const ViewsReply& v) {
  auto list = out.initChanges(v.changes.size());
  for (size_t i = 0; i < v.changes.size(); ++i) {
    const ViewChange& c = v.changes[i];
    list[i].setNumber(c.number);
    list[i].setViewId(as_text(c.view_id));
    list[i].setPrimary(c.primary);
    list[i].setLastCommitted(c.last_committed);
    auto names = list[i].initMembers(c.members.size());
    for (size_t j = 0; j < c.members.size(); ++j) names.set(j, as_text(c.members[j]));
  }
}

ViewsReply views_from(wire::Response::Views::Reader r) {
  ViewsReply out;
  for (auto c : r.getChanges()) {
    ViewChange change{c.getNumber(), str(c.getViewId()), c.getPrimary(), {}, c.getLastCommitted()};
    for (auto n : c.getMembers()) change.members.push_back(str(n));
    out.changes.push_back(std::move(change));
  }
  return out;
}

}  // namespace

namespace {

// REQUIRES: the body is not an EncodedReply (it is one already).
void build_response(capnp::MallocMessageBuilder& message, const Response& response) {
  auto root = message.initRoot<wire::Response>();
  root.setProtocolVersion(kProtocolVersion);
  root.setId(response.id);
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, ErrorReply>) {
          auto e = root.initError();
          e.setCode(to_wire(body.code));
          e.setMessage(as_text(body.message));
        } else if constexpr (std::is_same_v<T, ValueReply>) {
          auto v = root.initValue();
          v.setFound(body.found);
          v.setValue(as_data(body.value));
          v.setVersion(body.version);
          v.setMayBeStale(body.may_be_stale);
        } else if constexpr (std::is_same_v<T, ScanReply>) {
          auto s = root.initEntries();
          s.setMayBeStale(body.may_be_stale);
          s.setTruncated(body.truncated);
          auto list = s.initEntries(body.entries.size());
          for (size_t i = 0; i < body.entries.size(); ++i) {
            list[i].setKey(as_data(body.entries[i].key));
            list[i].setValue(as_data(body.entries[i].value));
            list[i].setVersion(body.entries[i].version);
          }
        } else if constexpr (std::is_same_v<T, CommitReply>) {
          auto c = root.initCommit();
          c.setCommitted(body.committed);
          c.setSeqno(body.seqno);
          c.setDuplicate(body.duplicate);
          auto keys = c.initConflictKeys(body.conflict_keys.size());
          for (size_t i = 0; i < body.conflict_keys.size(); ++i)
            keys.set(i, as_data(body.conflict_keys[i]));
        } else if constexpr (std::is_same_v<T, MembersReply>) {
          set_members(root.initMembers(), body);
        } else if constexpr (std::is_same_v<T, ViewsReply>) {
          set_views(root.initViews(), body);
        } else if constexpr (std::is_same_v<T, TransferReply>) {
          codec::set_transfer_reply(root.initTransfer(), body);
        } else if constexpr (std::is_same_v<T, EncodedReply>) {
          TUTTI_INVARIANT(false, "a response encoded twice");
        } else {
          set_status(root.initStatus(), body);
        }
      },
      response.body);
}

unsigned response_segment_words(const Response& response) {
  size_t hint = 0;
  if (auto* v = std::get_if<ValueReply>(&response.body)) hint = v->value.size();
  if (auto* e = std::get_if<ScanReply>(&response.body))
    for (const auto& kv : e->entries) hint += kv.key.size() + kv.value.size() + 32;
  if (auto* t = std::get_if<TransferReply>(&response.body)) hint = codec::transfer_reply_bytes(*t);
  return first_segment_words(hint);
}

}  // namespace

std::string encode_response(const Response& response) {
  capnp::MallocMessageBuilder message(response_segment_words(response));
  build_response(message, response);
  return to_bytes(message);
}

std::string encode_response_frame(Response response) {
  if (auto* e = std::get_if<EncodedReply>(&response.body)) return std::move(e->frame);
  capnp::MallocMessageBuilder message(response_segment_words(response));
  build_response(message, response);
  std::string out = to_bytes(message, kFrameHeaderBytes);
  gcs::put_frame_header(out);
  return out;
}

Response decode_response(std::string_view payload) {
  return with_reader<wire::Response>(payload, "response", [](wire::Response::Reader r) {
    check_version(r.getProtocolVersion(), kProtocolVersion, "response");
    Response out{r.getId(), ErrorReply{}};
    switch (r.which()) {
      case wire::Response::ERROR:
        out.body = ErrorReply{from_wire(r.getError().getCode()), str(r.getError().getMessage())};
        break;
      case wire::Response::VALUE: {
        auto v = r.getValue();
        out.body = ValueReply{v.getFound(), str(v.getValue()), v.getVersion(), v.getMayBeStale()};
        break;
      }
      case wire::Response::ENTRIES: {
        ScanReply scan;
        scan.may_be_stale = r.getEntries().getMayBeStale();
        scan.truncated = r.getEntries().getTruncated();
        for (auto e : r.getEntries().getEntries())
          scan.entries.push_back(KeyValue{str(e.getKey()), str(e.getValue()), e.getVersion()});
        out.body = std::move(scan);
        break;
      }
      case wire::Response::COMMIT: {
        auto c = r.getCommit();
        CommitReply commit{c.getCommitted(), c.getSeqno(), {}, c.getDuplicate()};
        for (auto k : c.getConflictKeys()) commit.conflict_keys.push_back(str(k));
        out.body = std::move(commit);
        break;
      }
      case wire::Response::STATUS:
        out.body = status_from(r.getStatus());
        break;
      case wire::Response::MEMBERS:
        out.body = members_from(r.getMembers());
        break;
      case wire::Response::VIEWS:
        out.body = views_from(r.getViews());
        break;
      case wire::Response::TRANSFER:
        out.body = codec::transfer_reply_from(r.getTransfer());
        break;
      default:
        throw DecodeError("unknown response type");
    }
    return out;
  });
}

// ---- write-sets and outcomes ----

std::string encode_writeset(const WriteSet& ws) {
  capnp::MallocMessageBuilder message(
      first_segment_words(ws.txn_id.size() + writeset_bytes(ws.reads, ws.writes)));
  auto root = message.initRoot<wire::WriteSet>();
  root.setFormatVersion(kWriteSetFormat);
  root.setOrigin(as_data(ws.origin));
  root.setTxnId(as_data(ws.txn_id));
  set_read_items(root.initReads(ws.reads.size()), ws.reads);
  set_write_items(root.initWrites(ws.writes.size()), ws.writes);
  root.setMarker(ws.marker);
  return to_bytes(message);
}

WriteSet decode_writeset(std::string_view bytes) {
  return with_reader<wire::WriteSet>(bytes, "write-set", [](wire::WriteSet::Reader r) {
    check_version(r.getFormatVersion(), kWriteSetFormat, "write-set");
    return WriteSet{str(r.getOrigin()), str(r.getTxnId()), read_items(r.getReads()),
                    write_items(r.getWrites()), r.getMarker()};
  });
}

std::string encode_outcome(const Outcome& outcome) {
  capnp::MallocMessageBuilder message(first_segment_words(0));
  auto root = message.initRoot<wire::TxnOutcome>();
  root.setFormatVersion(kOutcomeFormat);
  root.setSeqno(outcome.seqno);
  root.setCommitted(outcome.committed);
  root.setRejected(as_text(outcome.rejected));
  root.setFingerprint(outcome.fingerprint);
  auto keys = root.initConflictKeys(outcome.conflict_keys.size());
  for (size_t i = 0; i < outcome.conflict_keys.size(); ++i)
    keys.set(i, as_data(outcome.conflict_keys[i]));
  return to_bytes(message);
}

Outcome decode_outcome(std::string_view bytes) {
  return with_reader<wire::TxnOutcome>(
      bytes, "transaction outcome", [](wire::TxnOutcome::Reader r) {
        check_version(r.getFormatVersion(), kOutcomeFormat, "transaction outcome");
        Outcome out{r.getSeqno(), r.getCommitted(), {}, str(r.getRejected()), r.getFingerprint()};
        for (auto k : r.getConflictKeys()) out.conflict_keys.push_back(str(k));
        return out;
      });
}

}  // namespace tutti::core
