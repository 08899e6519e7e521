#include "core/transfer.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/admission.hpp"
#include "core/applier.hpp"
#include "core/persister.hpp"
#include "core/uuid.hpp"
#include "gcs/wire.hpp"

namespace tutti::core {
namespace {

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

TransferProgress make_progress(std::string kind, std::string role, std::string peer, uint64_t done,
                               uint64_t total, std::string unit, Clock::duration elapsed) {
  TransferProgress p{
      std::move(kind), std::move(role), std::move(peer), done, total, std::move(unit), 0, 0};
  const double s = seconds(elapsed);
  if (s > 0) p.rate = static_cast<double>(done) / s;
  if (p.rate > 0 && total > done) p.eta_s = static_cast<double>(total - done) / p.rate;
  return p;
}

std::string progress_text(const TransferProgress& p) {
  const bool bytes = p.unit == "bytes";
  const double scale = bytes ? 1e6 : 1;
  const char* unit = bytes ? "MB" : "write-sets";
  return fmt::format("{:.1f} of {:.1f} {} ({:.0f}%), {:.1f} {}/s, about {:.0f} s left",
                     static_cast<double>(p.done) / scale, static_cast<double>(p.total) / scale,
                     unit, p.total ? 100.0 * static_cast<double>(p.done) / p.total : 100.0,
                     p.rate / scale, unit, p.eta_s);
}

}  // namespace

void SnapshotTally::add(const storage::TableItem& item) {
  bytes.at(static_cast<size_t>(item.table)) += item.key.size() + item.value.size();
}

uint64_t SnapshotTally::total() const {
  uint64_t n = 0;
  for (uint64_t b : bytes) n += b;
  return n;
}

uint64_t estimate_snapshot_bytes(const SnapshotChunk& header, const storage::SnapshotCursor& cursor,
                                 const SnapshotTally& got) {
  if (header.table_page_bytes.size() != storage::kStateTables) return header.total_bytes;
  uint64_t total = 0;
  for (size_t t = 0; t < storage::kStateTables; ++t)
    total += t < cursor.table ? got.bytes[t] : std::max(got.bytes[t], header.table_page_bytes[t]);
  return total;
}

// ---- donor ----

Response Donor::serve(uint64_t id, const TransferRequest& req, Clock::time_point now) {
  const bool log = std::holds_alternative<LogPull>(req.pull);
  Response r = log ? log_chunk(id, std::get<LogPull>(req.pull))
                   : snapshot_chunk(id, req, std::get<SnapshotPull>(req.pull), now);
  // A donor is one while it sends something: not for a refusal (a log that does not reach back,
  // asked of every member before a snapshot).
  const auto* t = std::get_if<TransferReply>(&r.body);
  const auto* chunk = t ? std::get_if<LogChunk>(&t->chunk) : nullptr;
  const bool sent = t && (!chunk || !chunk->entries.empty());
  if (sent) {
    std::lock_guard lock(mu_);
    last_served_ = now;
    last_joiner_ = req.joiner;
    last_kind_ = log ? "incremental" : "snapshot";
  }
  return r;
}

// Only applied entries leave (a tentative tail may yet be cut), contiguous from the pull's start.
Response Donor::log_chunk(uint64_t id, const LogPull& pull) {
  auto txn = store_.read();
  LogChunk out;
  out.donor_committed = txn->meta().last_committed;
  const uint64_t through = std::min(pull.through, out.donor_committed);
  const size_t max_bytes = std::clamp<size_t>(pull.max_bytes, 1, kTransferChunkBytes);
  size_t bytes = 0;
  uint64_t next = pull.from;
  // A log that starts past the pull's start has nothing of use to it: it is not read (a joiner
  // asks every donor so before it takes a snapshot).
  const uint64_t log_first = txn->meta().log_first;
  const bool holds_start = log_first != 0 && log_first <= pull.from;
  while (holds_start && next <= through && bytes < max_bytes) {
    auto entries = txn->log_from(next, 1024, max_bytes - bytes);
    if (entries.empty()) break;
    for (auto& e : entries) {
      if (e.seqno != next || e.seqno > through || bytes >= max_bytes) break;
      bytes += e.bytes.size();
      out.entries.push_back(std::move(e.bytes));
      ++next;
    }
    if (next <= through && (entries.back().seqno != next - 1)) break;  // a gap: stop there
  }
  // Covered: the log holds the start, or the donor has not reached it yet (nothing to send).
  out.covered = !out.entries.empty() || pull.from > out.donor_committed;
  return Response{id, TransferReply{std::move(out)}};
}

// REQUIRES: mu_ held. The pull's session, a new one when it names none (session set to it); null
// with refusal set when there is none to give.
std::shared_ptr<Donor::Session> Donor::open_session(uint64_t id, const TransferRequest& req,
                                                    uint64_t& session, Clock::time_point now,
                                                    std::optional<Response>& refusal) {
  if (session == 0) {
    if (sessions_.size() >= kMaxSnapshotSessions) {
      refusal = Response{
          id, error_reply(ErrorCode::busy,
                          fmt::format("this donor serves {} snapshots already", sessions_.size()))};
      return nullptr;
    }
    auto s = std::make_shared<Session>();
    s->snap = store_.snapshot();
    s->header.seqno = s->snap->meta().last_committed;
    s->header.content_hash = s->snap->meta().content_hash;
    s->header.cert_hash = s->snap->meta_get(kMetaCertHash).value_or("");
    if (auto raw = s->snap->meta_get(kMetaGcsState))
      s->header.sender_high = gcs::decode_durable(*raw).sender_high;
    s->header.total_bytes = s->snap->table_bytes();
    const auto& pages = s->snap->table_page_bytes();
    s->header.table_page_bytes.assign(pages.begin(), pages.end());
    s->joiner = req.joiner;
    s->started = s->last = now;
    s->reconcile = std::get<SnapshotPull>(req.pull).reconcile;
    if (s->reconcile && s->reconcile->newest > s->header.seqno) {
      refusal = Response{
          id, error_reply(ErrorCode::unavailable,
                          fmt::format("this donor is at seqno {}, behind the part the joiner "
                                      "staged at seqno {}: ask again shortly",
                                      s->header.seqno, s->reconcile->newest))};
      return nullptr;
    }
    session = s->header.session = next_session_++;
    spdlog::info("donor: snapshot at seqno {} for '{}' ({:.1f} MB of state tables{})",
                 s->header.seqno, req.joiner, static_cast<double>(s->header.total_bytes) / 1e6,
                 s->reconcile ? fmt::format(", carrying forward what it staged at seqno {}",
                                            s->reconcile->since)
                              : "");
    sessions_.emplace(session, s);
  }
  // A pull names its session's seqno and comes from its joiner: a number this donor handed out
  // before it restarted, now another joiner's or another seqno's, is not that session.
  const uint64_t seqno = std::get<SnapshotPull>(req.pull).seqno;
  auto it = sessions_.find(session);
  if (it != sessions_.end() &&
      (it->second->joiner != req.joiner || (seqno != 0 && it->second->header.seqno != seqno)))
    it = sessions_.end();
  if (it == sessions_.end()) {
    refusal = Response{id, error_reply(ErrorCode::unavailable,
                                       "no such snapshot session here (it expired, or this donor "
                                       "restarted): start the snapshot again")};
    return nullptr;
  }
  it->second->last = now;
  return it->second;
}

Response Donor::snapshot_chunk(uint64_t id, const TransferRequest& req, const SnapshotPull& pull,
                               Clock::time_point now) {
  uint64_t session = pull.session;
  std::shared_ptr<Session> s;
  std::optional<Response> refusal;
  {
    std::lock_guard lock(mu_);
    s = open_session(id, req, session, now, refusal);
  }
  if (!s) return std::move(*refusal);
  // One joiner pulls one chunk at a time: no other reader of this session meanwhile.
  SnapshotChunk out = s->header;
  out.cursor = pull.cursor;
  try {
    out.items =
        s->snap->next(out.cursor, std::clamp<size_t>(pull.max_bytes, 1, kTransferChunkBytes),
                      s->reconcile ? &*s->reconcile : nullptr);
  } catch (const storage::StorageError& e) {
    std::lock_guard lock(mu_);
    sessions_.erase(session);
    return Response{id, error_reply(ErrorCode::unavailable, e.what())};
  }
  std::lock_guard lock(mu_);
  for (const auto& i : out.items) s->sent.add(i);
  s->cursor = out.cursor;
  if (out.cursor.done()) {
    spdlog::info("donor: snapshot at seqno {} for '{}' sent: {:.1f} MB in {:.1f} s",
                 s->header.seqno, s->joiner, static_cast<double>(s->sent.total()) / 1e6,
                 seconds(now - s->started));
    sessions_.erase(session);
  }
  return Response{id, TransferReply{std::move(out)}};
}

void Donor::tick(Clock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second->last < kSessionIdle) {
      ++it;
      continue;
    }
    spdlog::warn("donor: snapshot for '{}' dropped: not pulled for {} s", it->second->joiner,
                 std::chrono::duration_cast<std::chrono::seconds>(kSessionIdle).count());
    it = sessions_.erase(it);
  }
  if (!sessions_.empty() && now - last_logged_ >= kProgressEvery) {
    last_logged_ = now;
    const Session& s = *sessions_.begin()->second;
    const TransferProgress p = make_progress("snapshot", "donor", s.joiner, s.sent.total(),
                                             estimate_snapshot_bytes(s.header, s.cursor, s.sent),
                                             "bytes", now - s.started);
    spdlog::info("donor: sending a snapshot to '{}': {}", p.peer, progress_text(p));
  }
}

bool Donor::active(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  return active_locked(now);
}

bool Donor::active_locked(Clock::time_point now) const {
  return !sessions_.empty() ||
         (last_served_ != Clock::time_point{} && now - last_served_ < std::chrono::seconds(2));
}

TransferProgress Donor::progress(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  if (!sessions_.empty()) {
    const Session& s = *sessions_.begin()->second;
    return make_progress("snapshot", "donor", s.joiner, s.sent.total(),
                         estimate_snapshot_bytes(s.header, s.cursor, s.sent), "bytes",
                         now - s.started);
  }
  if (!active_locked(now)) return {};
  return TransferProgress{last_kind_, "donor", last_joiner_, 0, 0, "write-sets", 0, 0};
}

// ---- joiner ----

Joiner::Joiner(std::string history, std::string self_name, uint64_t applied,
               std::map<gcs::NodeId, uint64_t> sender_high, Options options, Clock::time_point now,
               std::optional<SnapshotResume> resume)
    : history_(std::move(history)),
      self_name_(std::move(self_name)),
      o_(std::move(options)),
      applied_(applied),
      sender_high_(std::move(sender_high)),
      next_from_(applied + 1),
      ist_start_(applied),
      phase_started_(now),
      last_logged_(now) {
  // A snapshot this node had staged part of before it restarted: ask its donor for the rest, in
  // the same session (the donor keeps it kSessionIdle). One that would not move this node on is
  // stale: the next snapshot empties the stage.
  if (!resume || resume->header.session == 0 || resume->header.seqno <= applied) return;
  mode_ = Mode::snapshot;
  donor_ = resume->donor;
  session_ = resume->header.session;
  header_ = std::move(resume->header);
  cursor_ = header_.cursor;
  staged_ = resume->staged_hash;
  reconcile_ = resume->reconcile;
  if (resume->table_bytes_got.size() == storage::kStateTables) {
    std::copy(resume->table_bytes_got.begin(), resume->table_bytes_got.end(),
              received_.bytes.begin());
  } else if (cursor_.table < storage::kStateTables) {  // a record without them: one sum
    received_.bytes[cursor_.table] = resume->received_bytes;
  }
  first_chunk_ = false;
  last_chunk_at_ = now;
  resumed_ = true;  // said at the first pull, once the donor's name is known
  if (cursor_.done()) queue_install();
}

void Joiner::set_target(uint64_t base, std::vector<gcs::NodeId> donors) {
  target_ = std::max(target_, base);
  target_known_ = true;
  donors_ = std::move(donors);
  // A snapshot's donor is waited for a while (poll): it holds the session, and a view formed
  // around a node that just restarted may not list every member yet.
  if (mode_ == Mode::snapshot && session_ != 0) return;
  if (donor_ && !in_view(*donor_)) donor_.reset();  // it left: the next pull goes to another
}

// A snapshot's donor out of the view is waited for kDonorGone (it holds the session), then the
// snapshot starts over with another. True while waiting.
bool Joiner::awaiting_snapshot_donor(Clock::time_point now) {
  if (!donor_ || mode_ != Mode::snapshot || session_ == 0) return false;
  if (in_view(*donor_)) {
    donor_missing_since_.reset();
    return false;
  }
  if (!donor_missing_since_) donor_missing_since_ = now;
  if (now - *donor_missing_since_ < kDonorGone) return true;
  spdlog::info("state transfer: '{}', the donor of the snapshot, is not in the view: another",
               donor_name());
  donor_missing_since_.reset();
  donor_.reset();
  carry_over(now);
  return false;
}

bool Joiner::in_view(const gcs::NodeId& id) const {
  return std::find(donors_.begin(), donors_.end(), id) != donors_.end();
}

std::optional<gcs::NodeId> Joiner::choose_donor(Clock::time_point now) const {
  std::vector<gcs::NodeId> order;
  for (const auto& p : o_.preferred)
    for (const auto& d : donors_)
      if ((name_ ? name_(d) : d) == p) order.push_back(d);
  for (const auto& d : donors_)
    if (std::find(order.begin(), order.end(), d) == order.end()) order.push_back(d);
  for (const auto& d : order) {
    auto f = failed_until_.find(d);
    if (f == failed_until_.end() || f->second <= now) return d;
  }
  return std::nullopt;
}

std::optional<Joiner::Pull> Joiner::poll(Clock::time_point now) {
  if (in_flight_ && now - sent_at_ >= o_.timeout)
    fail_donor(
        fmt::format("no answer in {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(o_.timeout).count()),
        now, true);
  if (in_flight_ || pending_.size() >= kMaxPendingWrites || !target_known_ || now < retry_at_)
    return std::nullopt;
  if (mode_ == Mode::incremental && next_from_ > target_) return std::nullopt;
  // The whole snapshot is here, its install on the way: nothing to ask for (asking would find
  // the donor's session closed, and start over: the transfer bench saw it).
  if (mode_ == Mode::snapshot && cursor_.done()) return std::nullopt;
  if (awaiting_snapshot_donor(now)) return std::nullopt;
  if (resumed_ && donor_) {
    spdlog::info(
        "state transfer: resuming the snapshot at seqno {} staged here ({:.1f} of {:.1f} MB) in "
        "its session at '{}'",
        header_.seqno, static_cast<double>(received_.total()) / 1e6,
        static_cast<double>(header_.total_bytes) / 1e6, donor_name());
  }
  resumed_ = false;
  if (!donor_) {
    donor_ = choose_donor(now);
    if (!donor_) return std::nullopt;
    spdlog::info("state transfer: asking '{}' for {}", donor_name(),
                 mode_ == Mode::snapshot
                     ? std::string("a snapshot")
                     : fmt::format("write-sets {}..{} from its log", next_from_, target_));
  }
  TransferRequest req{history_, LogPull{}, self_name_};
  if (mode_ == Mode::incremental) {
    req.pull = LogPull{next_from_, target_, o_.chunk_bytes};
  } else {
    req.pull = SnapshotPull{session_, cursor_, o_.chunk_bytes, session_ ? header_.seqno : 0,
                            session_ ? std::nullopt : reconcile_};
  }
  in_flight_ = next_number_++;
  sent_at_ = now;
  return Pull{*in_flight_, *donor_, std::move(req)};
}

void Joiner::on_reply(uint64_t number, std::optional<Response> reply, Clock::time_point now) {
  if (!in_flight_ || number != *in_flight_) return;  // late: already given up on
  in_flight_.reset();
  if (!reply) return fail_donor("no answer (unreachable, or the connection broke)", now, true);
  if (auto* e = std::get_if<ErrorReply>(&reply->body)) return fail_donor(e->message, now);
  auto* t = std::get_if<TransferReply>(&reply->body);
  if (!t) return fail_donor("an answer that is no transfer chunk", now);
  if (auto* log = std::get_if<LogChunk>(&t->chunk)) {
    if (mode_ != Mode::incremental) return fail_donor("a log chunk for a snapshot pull", now);
    return on_log(*log, now);
  }
  if (mode_ != Mode::snapshot) return fail_donor("a snapshot chunk for a log pull", now);
  on_snapshot(std::get<SnapshotChunk>(t->chunk), now);
}

void Joiner::on_log(const LogChunk& c, Clock::time_point now) {
  if (!c.covered) return log_short(now);
  if (c.entries.empty()) {  // the donor is not that far yet: ask again shortly
    retry_at_ = now + std::chrono::milliseconds(50);
    return;
  }
  TransferWrite w;
  w.kind = TransferWrite::Kind::apply;
  for (const auto& raw : c.entries) {
    gcs::LogEntry e;
    try {
      e = gcs::decode_log_entry(raw);
    } catch (const std::exception& ex) {
      return fail_donor(fmt::format("a log entry that does not decode: {}", ex.what()), now);
    }
    if (e.seqno != next_from_ || e.seqno > target_)
      return fail_donor(fmt::format("log entry {} where {} was due", e.seqno, next_from_), now);
    ++next_from_;
    w.entries.push_back(raw);
  }
  pending_.push_back(std::move(w));
}

void Joiner::on_snapshot(SnapshotChunk& c, Clock::time_point now) {
  if (session_ != 0 && (c.session != session_ || c.seqno != header_.seqno))
    return fail_donor("another snapshot session", now);
  if (session_ == 0) {
    session_ = c.session;
    header_ = c;
    header_.items.clear();
    spdlog::info("state transfer: '{}' streams a snapshot at seqno {} ({:.1f} MB{})", donor_name(),
                 c.seqno, static_cast<double>(c.total_bytes) / 1e6,
                 reconcile_ ? fmt::format("; what is staged here from seqno {} is kept, and comes "
                                          "again only where it changed",
                                          reconcile_->since)
                            : "");
  }
  last_chunk_at_ = now;
  pace(now - sent_at_, now);
  TransferWrite w;
  w.kind = TransferWrite::Kind::stage;
  w.reset = first_chunk_;
  first_chunk_ = false;
  for (const auto& i : c.items) received_.add(i);
  w.items = std::move(c.items);
  w.reconcile = reconcile_;
  w.from = cursor_;
  w.to = cursor_ = c.cursor;
  SnapshotResume resume{*donor_, header_, {}, received_.total(), {}, reconcile_};
  resume.header.cursor = cursor_;
  resume.table_bytes_got.assign(received_.bytes.begin(), received_.bytes.end());
  w.resume = std::move(resume);
  pending_.push_back(std::move(w));
  if (cursor_.done()) queue_install();
}

void Joiner::queue_install() {
  TransferWrite install;
  install.kind = TransferWrite::Kind::install;
  install.seqno = header_.seqno;
  install.content_hash = header_.content_hash;
  install.cert_hash = header_.cert_hash;
  install.reconcile = reconcile_;
  pending_.push_back(std::move(install));
}

void Joiner::set_group_busy(bool busy) {
  group_busy_ = busy;
  const bool paced = busy && mode_ == Mode::snapshot && o_.busy_share < 100;
  if (paced == said_paced_) return;
  said_paced_ = paced;
  if (paced) {
    spdlog::info("state transfer: the group commits writes: the snapshot takes {}% of the time",
                 o_.busy_share);
  } else if (mode_ == Mode::snapshot) {
    spdlog::info("state transfer: the snapshot runs at full speed");
  }
}

void Joiner::pace(Clock::duration took, Clock::time_point now) {
  if (!group_busy_ || o_.busy_share >= 100 || mode_ != Mode::snapshot) return;
  const auto wait = took * (100 - o_.busy_share) / o_.busy_share;
  retry_at_ = std::max(retry_at_, now + wait);
}

std::optional<TransferWrite> Joiner::take_write(Clock::time_point now) {
  if (writing_ || pending_.empty()) return std::nullopt;
  TransferWrite w = std::move(pending_.front());
  pending_.pop_front();
  if (w.kind == TransferWrite::Kind::stage)
    w.staged_hash = w.reset && !w.reconcile ? storage::ContentHash{} : staged_;
  if (w.kind == TransferWrite::Kind::install && !(staged_ == w.content_hash)) {
    // What reached the disk is not the donor's state at the snapshot's seqno: never install it.
    spdlog::error(
        "state transfer: the snapshot from '{}' staged here hashes {}, the donor's state at seqno "
        "{} hashes {}: discarded, starting over",
        donor_name(), staged_.hex(), w.seqno, w.content_hash.hex());
    failed_until_[donor_.value_or("")] = Clock::time_point::max();
    donor_.reset();
    start_snapshot(now);
    return std::nullopt;
  }
  writing_ = w.kind;
  write_started_ = now;
  return w;
}

void Joiner::written(const TransferWritten& w, Clock::time_point now) {
  const auto kind = writing_;
  writing_.reset();
  if (kind == TransferWrite::Kind::stage) pace(now - write_started_, now);
  staged_ = w.staged_hash;
  for (const auto& d : w.deliveries) {
    applied_ = d.seqno;
    uint64_t& high = sender_high_[d.origin];
    high = std::max(high, d.sender_seq);
  }
  if (kind != TransferWrite::Kind::install) return;
  // The staged snapshot is live: the rest comes from the log, from its seqno on.
  applied_ = header_.seqno;
  for (const auto& [s, high] : header_.sender_high)
    sender_high_[s] = std::max(sender_high_[s], high);
  spdlog::info("state transfer: snapshot at seqno {} installed ({:.1f} MB streamed in {:.1f} s{})",
               header_.seqno, static_cast<double>(received_.total()) / 1e6,
               seconds(now - phase_started_),
               reconcile_ ? "; the rest was staged before, and carried forward" : "");
  reconcile_.reset();
  start_incremental(applied_ + 1, now);
}

void Joiner::write_failed(TransferWrite w) {
  writing_.reset();
  pending_.push_front(std::move(w));
}

void Joiner::write_rejected(const std::string& why, Clock::time_point now) {
  spdlog::error("state transfer: the snapshot from '{}' could not be staged: {}; starting over",
                donor_name(), why);
  writing_.reset();
  pending_.clear();
  in_flight_.reset();  // an answer on its way belongs to the snapshot given up
  if (donor_) failed_until_[*donor_] = now + kDonorBackoff;
  donor_.reset();
  start_snapshot(now);
  retry_at_ = now + std::chrono::milliseconds(100);
}

// Donors' logs differ (one that joined by snapshot holds only what followed it): before a
// snapshot, every donor in the view is asked whether its log reaches back far enough.
void Joiner::log_short(Clock::time_point now) {
  log_short_.insert(*donor_);
  const std::string short_one = donor_name();
  const auto other = std::find_if(donors_.begin(), donors_.end(), [&](const gcs::NodeId& d) {
    const auto f = failed_until_.find(d);
    return !log_short_.contains(d) && (f == failed_until_.end() || f->second <= now);
  });
  if (other == donors_.end()) {
    spdlog::info("state transfer: '{}' no longer holds write-set {} in its log: a snapshot instead",
                 short_one, next_from_);
    return start_snapshot(now);
  }
  donor_ = *other;
  spdlog::info(
      "state transfer: '{}' no longer holds write-set {} in its log: asking '{}' for write-sets "
      "{}..{} from its log",
      short_one, next_from_, donor_name(), next_from_, target_);
}

void Joiner::start_snapshot(Clock::time_point now) {
  mode_ = Mode::snapshot;
  session_ = 0;
  cursor_ = {};
  first_chunk_ = true;
  received_ = {};
  reconcile_.reset();
  phase_started_ = now;
}

// A snapshot lives in its donor's read transaction: another donor's is at another seqno. What is
// staged here of the data is kept all the same, and the next snapshot carries it forward: its
// donor sends again only the entries a write changed since (storage::Reconcile), and the staged
// entries it no longer has are dropped. The install checks the whole against its content hash.
void Joiner::carry_over(Clock::time_point now) {
  storage::SnapshotCursor staged = cursor_;
  if (staged.table > 0) staged = storage::SnapshotCursor{1, false, {}};  // all of the data
  if (reconcile_ && !reconcile_->passed(cursor_)) {
    // Still inside the part carried before: it stays, some of it newer now.
    if (session_ != 0 && cursor_.started)
      reconcile_->newest = std::max(reconcile_->newest, header_.seqno);
  } else if (session_ != 0 && (staged.table > 0 || staged.started)) {
    reconcile_ = storage::Reconcile{header_.seqno, header_.seqno, staged};
  } else {
    return start_snapshot(now);
  }
  spdlog::info(
      "state transfer: the data staged here (seqno {}{}) is kept: the next snapshot sends again "
      "only what changed in it",
      reconcile_->since,
      reconcile_->newest > reconcile_->since ? fmt::format(" to {}", reconcile_->newest) : "");
  mode_ = Mode::snapshot;
  session_ = 0;
  cursor_ = {};
  first_chunk_ = true;
  received_ = {};
  phase_started_ = now;
}

void Joiner::start_incremental(uint64_t from, Clock::time_point now) {
  mode_ = Mode::incremental;
  next_from_ = from;
  log_short_.clear();
  ist_start_ = from - 1;
  session_ = 0;
  phase_started_ = now;
}

void Joiner::fail_donor(const std::string& why, Clock::time_point now, bool session_kept) {
  in_flight_.reset();
  last_failure_ = why;
  // Silence is not a refusal: the donor may still hold the session (it drops one unpulled for
  // kSessionIdle), and what is staged here is good. Ask it again, from where it stopped, until
  // it leaves the view or the session must be gone.
  if (session_kept && donor_ && mode_ == Mode::snapshot && session_ != 0 &&
      now - last_chunk_at_ + kResumeRetry < kSessionIdle) {
    spdlog::warn(
        "state transfer: donor '{}' failed: {}; asking it again in {} ms to resume the snapshot "
        "where it stopped ({:.1f} MB staged)",
        donor_name(), why, kResumeRetry.count(), static_cast<double>(received_.total()) / 1e6);
    retry_at_ = now + kResumeRetry;
    return;
  }
  if (donor_) {
    spdlog::warn("state transfer: donor '{}' failed: {}; trying another", donor_name(), why);
    failed_until_[*donor_] = now + kDonorBackoff;
  }
  donor_.reset();
  // What the log gave is applied: the incremental transfer goes on from there.
  if (mode_ == Mode::snapshot) carry_over(now);
  retry_at_ = now + std::chrono::milliseconds(100);
}

std::string Joiner::donor_name() const {
  if (!donor_) return "?";
  return name_ ? name_(*donor_) : uuid_text(*donor_).substr(0, 8);
}

TransferProgress Joiner::progress(Clock::time_point now) const {
  const std::string peer = donor_ ? donor_name() : "";
  if (mode_ == Mode::snapshot)
    return make_progress("snapshot", "joiner", peer, received_.total(),
                         estimate_snapshot_bytes(header_, cursor_, received_), "bytes",
                         now - phase_started_);
  return make_progress("incremental", "joiner", peer, applied_ - ist_start_,
                       target_ > ist_start_ ? target_ - ist_start_ : 0, "write-sets",
                       now - phase_started_);
}

std::string Joiner::describe() const {
  const TransferProgress p = progress(phase_started_);
  const std::string from = donor_ ? " from '" + donor_name() + "'" : "";
  if (mode_ == Mode::snapshot)
    return fmt::format("catching up: {:.0f}% of the snapshot{} ({:.1f} of {:.1f} MB)",
                       p.total ? 100.0 * static_cast<double>(p.done) / p.total : 0.0, from,
                       static_cast<double>(p.done) / 1e6, static_cast<double>(p.total) / 1e6);
  return fmt::format("catching up: applied seqno {} of {} by incremental transfer{}", applied_,
                     target_, from);
}

std::string Joiner::progress_line(Clock::time_point now) {
  if (now - last_logged_ < kProgressEvery) return "";
  last_logged_ = now;
  const TransferProgress p = progress(now);
  std::string line = fmt::format("state transfer ({}{}): {}", p.kind,
                                 p.peer.empty() ? "" : " from '" + p.peer + "'", progress_text(p));
  if (!donor_ && !last_failure_.empty())
    line += "; waiting for a donor (last: " + last_failure_ + ")";
  return line;
}

}  // namespace tutti::core
