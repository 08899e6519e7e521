#include "core/codec_transfer.hpp"

#include <fmt/format.h>

#include "core/codec.hpp"
#include "gcs/capnp_bytes.hpp"

namespace tutti::core::codec {
namespace {

using capnp_bytes::as_data;
using capnp_bytes::as_text;
using capnp_bytes::str;

std::string u64_le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

uint64_t u64_le(std::string_view b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

void set_cursor(wire::SnapshotCursor::Builder out, const storage::SnapshotCursor& c) {
  out.setTable(c.table);
  out.setStarted(c.started);
  out.setAfter(as_data(c.after));
}

void set_table_list(capnp::List<uint64_t>::Builder out, const std::vector<uint64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) out.set(i, v[i]);
}

// None, or one per state table.
std::vector<uint64_t> table_list(capnp::List<uint64_t>::Reader r, std::string_view what) {
  if (r.size() != 0 && r.size() != storage::kStateTables)
    throw DecodeError(
        fmt::format("{}: {} values for {} tables", what, r.size(), storage::kStateTables));
  std::vector<uint64_t> out;
  for (uint64_t v : r) out.push_back(v);
  return out;
}

storage::SnapshotCursor cursor_from(wire::SnapshotCursor::Reader r) {
  if (r.getTable() > storage::kStateTables) throw DecodeError("snapshot cursor: no such table");
  return storage::SnapshotCursor{r.getTable(), r.getStarted(), str(r.getAfter())};
}

void set_reconcile(wire::Reconcile::Builder out, const storage::Reconcile& r) {
  out.setSince(r.since);
  out.setNewest(r.newest);
  set_cursor(out.initThrough(), r.through);
}

storage::Reconcile reconcile_from(wire::Reconcile::Reader r) {
  if (r.getSince() > r.getNewest()) throw DecodeError("reconcile: since is after newest");
  return storage::Reconcile{r.getSince(), r.getNewest(), cursor_from(r.getThrough())};
}

std::string hash_bytes(const storage::ContentHash& h) {
  return u64_le(h.lo()) + u64_le(h.hi());
}

storage::ContentHash hash_from(std::string_view b, std::string_view what) {
  if (b.size() != 16) throw DecodeError(std::string(what) + ": content hash is not 16 bytes");
  return storage::ContentHash(u64_le(b.substr(0, 8)), u64_le(b.substr(8)));
}

void set_snapshot_chunk(wire::Response::SnapshotChunk::Builder out, const SnapshotChunk& c) {
  out.setSession(c.session);
  out.setSeqno(c.seqno);
  const std::string hash = hash_bytes(c.content_hash);
  out.setContentHash(as_data(hash));
  out.setCertHash(as_data(c.cert_hash));
  auto high = out.initSenderHigh(c.sender_high.size());
  size_t i = 0;
  for (const auto& [sender, seq] : c.sender_high) {
    high[i].setSender(as_data(sender));
    high[i++].setSeq(seq);
  }
  out.setTotalBytes(c.total_bytes);
  auto items = out.initItems(c.items.size());
  for (i = 0; i < c.items.size(); ++i) {
    items[i].setTable(static_cast<uint8_t>(c.items[i].table));
    items[i].setKey(as_data(c.items[i].key));
    items[i].setValue(as_data(c.items[i].value));
    items[i].setKept(c.items[i].kept);
  }
  set_cursor(out.initCursor(), c.cursor);
  set_table_list(out.initTablePageBytes(c.table_page_bytes.size()), c.table_page_bytes);
  out.setLayout(storage::kStateLayout);
}

// A snapshot's state tables are staged as they are streamed: both ends must lay them out alike.
void check_layout(uint16_t got, const char* what) {
  if (got != storage::kStateLayout)
    throw DecodeError(fmt::format(
        "{}: state tables of storage format {}, this node's are of format {}: a snapshot needs "
        "the same tutti version at both ends",
        what, got == 0 ? 2 : got, storage::kStateLayout));
}

SnapshotChunk snapshot_chunk_from(wire::Response::SnapshotChunk::Reader r) {
  SnapshotChunk c;
  c.session = r.getSession();
  c.seqno = r.getSeqno();
  c.content_hash = hash_from(str(r.getContentHash()), "snapshot chunk");
  c.cert_hash = str(r.getCertHash());
  for (auto h : r.getSenderHigh()) c.sender_high[str(h.getSender())] = h.getSeq();
  c.total_bytes = r.getTotalBytes();
  for (auto item : r.getItems()) {
    if (item.getTable() >= storage::kStateTables) throw DecodeError("snapshot item: no such table");
    c.items.push_back(storage::TableItem{static_cast<storage::Table>(item.getTable()),
                                         str(item.getKey()), str(item.getValue()), item.getKept()});
  }
  c.cursor = cursor_from(r.getCursor());
  c.table_page_bytes = table_list(r.getTablePageBytes(), "snapshot chunk's table sizes");
  check_layout(r.getLayout(), "snapshot chunk");
  return c;
}

}  // namespace

void set_transfer_request(wire::Request::Transfer::Builder out, const TransferRequest& t) {
  out.setHistory(as_data(t.history));
  out.setJoiner(as_text(t.joiner));
  if (auto* log = std::get_if<LogPull>(&t.pull)) {
    auto l = out.initLog();
    l.setFrom(log->from);
    l.setThrough(log->through);
    l.setMaxBytes(log->max_bytes);
  } else {
    const auto& snap = std::get<SnapshotPull>(t.pull);
    auto s = out.initSnapshot();
    s.setSession(snap.session);
    set_cursor(s.initCursor(), snap.cursor);
    s.setMaxBytes(snap.max_bytes);
    s.setSeqno(snap.seqno);
    if (snap.reconcile) set_reconcile(s.initReconcile(), *snap.reconcile);
    s.setLayout(storage::kStateLayout);
  }
}

TransferRequest transfer_request_from(wire::Request::Transfer::Reader r) {
  TransferRequest t;
  t.history = str(r.getHistory());
  t.joiner = str(r.getJoiner());
  switch (r.which()) {
    case wire::Request::Transfer::LOG: {
      auto l = r.getLog();
      t.pull = LogPull{l.getFrom(), l.getThrough(), l.getMaxBytes()};
      break;
    }
    case wire::Request::Transfer::SNAPSHOT: {
      auto s = r.getSnapshot();
      check_layout(s.getLayout(), "snapshot request");
      SnapshotPull pull{s.getSession(), cursor_from(s.getCursor()), s.getMaxBytes(), s.getSeqno(),
                        std::nullopt};
      if (s.hasReconcile()) pull.reconcile = reconcile_from(s.getReconcile());
      t.pull = std::move(pull);
      break;
    }
    default:
      throw DecodeError("unknown transfer request");
  }
  return t;
}

void set_transfer_reply(wire::Response::TransferChunk::Builder out, const TransferReply& t) {
  if (auto* log = std::get_if<LogChunk>(&t.chunk)) {
    auto l = out.initLog();
    l.setCovered(log->covered);
    l.setDonorCommitted(log->donor_committed);
    auto entries = l.initEntries(log->entries.size());
    for (size_t i = 0; i < log->entries.size(); ++i) entries.set(i, as_data(log->entries[i]));
  } else {
    set_snapshot_chunk(out.initSnapshot(), std::get<SnapshotChunk>(t.chunk));
  }
}

TransferReply transfer_reply_from(wire::Response::TransferChunk::Reader r) {
  switch (r.which()) {
    case wire::Response::TransferChunk::LOG: {
      auto l = r.getLog();
      LogChunk c{l.getCovered(), l.getDonorCommitted(), {}};
      for (auto e : l.getEntries()) c.entries.push_back(str(e));
      return TransferReply{std::move(c)};
    }
    case wire::Response::TransferChunk::SNAPSHOT:
      return TransferReply{snapshot_chunk_from(r.getSnapshot())};
    default:
      throw DecodeError("unknown transfer reply");
  }
}

void set_progress(wire::Response::TransferProgress::Builder out, const TransferProgress& p) {
  out.setKind(as_text(p.kind));
  out.setRole(as_text(p.role));
  out.setPeer(as_text(p.peer));
  out.setDone(p.done);
  out.setTotal(p.total);
  out.setUnit(as_text(p.unit));
  out.setRate(p.rate);
  out.setEtaS(p.eta_s);
}

TransferProgress progress_from(wire::Response::TransferProgress::Reader r) {
  return TransferProgress{str(r.getKind()), str(r.getRole()), str(r.getPeer()), r.getDone(),
                          r.getTotal(),     str(r.getUnit()), r.getRate(),      r.getEtaS()};
}

size_t transfer_reply_bytes(const TransferReply& t) {
  size_t n = 0;
  if (auto* log = std::get_if<LogChunk>(&t.chunk)) {
    for (const auto& e : log->entries) n += e.size() + 16;
  } else {
    for (const auto& i : std::get<SnapshotChunk>(t.chunk).items)
      n += i.key.size() + i.value.size() + 40;
  }
  return n;
}

}  // namespace tutti::core::codec

namespace tutti::core {

constexpr uint16_t kSnapshotResumeFormat = 1;

std::string encode_snapshot_resume(const SnapshotResume& r) {
  capnp::MallocMessageBuilder message(capnp_bytes::first_segment_words(256));
  auto root = message.initRoot<wire::SnapshotResume>();
  root.setFormatVersion(kSnapshotResumeFormat);
  root.setDonor(codec::as_data(r.donor));
  codec::set_snapshot_chunk(root.initHeader(), r.header);
  const std::string hash = codec::hash_bytes(r.staged_hash);
  root.setStagedHash(codec::as_data(hash));
  root.setReceivedBytes(r.received_bytes);
  codec::set_table_list(root.initTableBytesGot(r.table_bytes_got.size()), r.table_bytes_got);
  if (r.reconcile) codec::set_reconcile(root.initReconcile(), *r.reconcile);
  return capnp_bytes::to_bytes(message);
}

SnapshotResume decode_snapshot_resume(std::string_view bytes) {
  return capnp_bytes::with_reader<DecodeError, wire::SnapshotResume>(
      bytes, "snapshot resume record", [](wire::SnapshotResume::Reader r) {
        if (r.getFormatVersion() != kSnapshotResumeFormat)
          throw VersionError(
              fmt::format("snapshot resume record has version {}; this build "
                          "speaks version {}",
                          r.getFormatVersion(), kSnapshotResumeFormat));
        SnapshotResume out;
        out.donor = codec::str(r.getDonor());
        out.header = codec::snapshot_chunk_from(r.getHeader());
        out.staged_hash = codec::hash_from(codec::str(r.getStagedHash()), "snapshot resume");
        out.received_bytes = r.getReceivedBytes();
        out.table_bytes_got = codec::table_list(r.getTableBytesGot(), "snapshot resume");
        if (r.hasReconcile()) out.reconcile = codec::reconcile_from(r.getReconcile());
        return out;
      });
}

}  // namespace tutti::core
