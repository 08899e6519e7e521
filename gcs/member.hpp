// The virtual-synchrony group protocol as a pure state machine (DESIGN.md §5, docs/gcs.md).
//
// Inputs: receive(message), tick(now), broadcast(payload), transfer_done(...), leave().
// Output: take_ready(), to be carried out in order: (1) persist (truncate the log, write the
// durable meta, append entries), (2) send the messages, (3) hand the events (deliveries and view
// changes) to the application. Nothing here reads a clock, a socket or a thread. The one
// exception to the order: the Ready's first `early` messages may leave before (1), as a Raft
// leader's entries leave while it writes them (they promise nothing about this member's disk).
#pragma once

#include <deque>
#include <map>
#include <set>

#include "gcs/messages.hpp"

namespace tutti::gcs {

struct Config {
  Time heartbeat_interval = 100;
  Time suspect_timeout = 1000;  // a member unheard this long is suspected
  Time install_timeout = 1500;  // a view change not done by then is tried again
  Time resend_timeout = 300;    // unacknowledged data and order are sent again
  Time exclude_time = 3000;     // a member that failed a view change is left out this long
  Time max_flow_pause = 5000;   // a member holding the group paused longer is evicted
  // An evicted member still asking for a pause is proposed again only once it stops asking, or
  // after this long.
  Time outsider_hold = 30000;
  // ... and one that still needs a transfer (a learner past its backlog bound) this long, unless
  // it stops asking first: its transfer goes on outside the view.
  Time outsider_transfer_hold = 600000;
  // Member weights for the primary component (majority by weight); a member not listed
  // weighs 1. Every member must be given the same weights.
  std::map<NodeId, uint32_t> weights;
  // fsync durability: the driver persists before it acknowledges. false (memory durability):
  // acknowledgements may leave before the entries reach disk, so a restarted member's log may
  // miss what it acknowledged, and after a crash of every member the last primary view re-forms
  // only once all of it is back.
  bool persist_before_ack = true;
  Limits limits;
};

struct ViewEvent {
  ViewInfo view;
  std::optional<ViewKey> predecessor;  // for a primary view: the primary view it continues
  std::vector<NodeId> joiners;         // need a state transfer up to view.base before they deliver
  std::map<NodeId, uint64_t> delivered;  // each member's last delivered seqno at the change
  bool self_needs_transfer = false;
};

using Event = std::variant<Delivery, ViewEvent>;

struct MemberReady {
  std::optional<uint64_t> truncate_after;  // drop log entries with a greater seqno
  // The member's durable state as of this batch, to write with it; its log is empty (the log's
  // changes are truncate_after and append). Set when it changed or the batch delivers.
  std::optional<Durable> meta;
  std::vector<LogEntry> append;
  std::vector<std::pair<NodeId, Message>> send;
  // The first `early` messages of send may leave as soon as the Ready is taken, before it is
  // persisted, once every earlier Ready was (persisted and sent): a sender's new Data and the
  // sequencer's Orders, while nothing before them in this Ready waits for the disk. They say
  // nothing about what this member holds (its Ack does, and is never early): a position is
  // stable only once every voter acknowledged it, so the sequencer's own copy counts only once
  // on its disk. Zero when the Ready changes the durable state (a new incarnation, view or
  // promise must be on disk before anything of it leaves).
  size_t early = 0;
  // The durable state changed beyond what deliveries change (a view, a promise, an
  // incarnation): meta must be on disk before any of send leaves. Without it and without log
  // changes, the batch only records deliveries, which the log holds durably: a crash that undid
  // the batch would see them delivered again, the same.
  bool durable_changed = false;
  std::vector<Event> events;
  bool empty() const {
    return !truncate_after && !meta && append.empty() && send.empty() && events.empty();
  }
};

enum class Phase { idle, operational, gathering, installed };
const char* to_string(Phase phase);

class Member {
 public:
  // A member starting (or restarting) from what it persisted. seeds: members to contact.
  Member(NodeId self, Durable durable, Config config, std::vector<NodeId> seeds, Time now);

  // Forms a new primary view of this member alone (operator decision), starting a history when
  // it has none.
  void bootstrap(const std::string& new_history);
  BroadcastResult broadcast(std::string payload);
  void receive(const Message& message, Time now);
  void tick(Time now);
  // The application holds everything up to seqno (a state transfer): deliveries resume after it.
  // sender_high: the highest sender_seq delivered per sender up to seqno, from the donor.
  // False when seqno falls short of the base of the primary view the member joined meanwhile:
  // nothing changed, and the transfer goes on to that base (last_primary_base()).
  bool transfer_done(uint64_t seqno, const std::map<NodeId, uint64_t>& sender_high);
  void leave();
  // The driver learnt of a peer (a link to it came up): heartbeats go to it from now on.
  void meet(const NodeId& peer);
  // Flow control: the application asks the group to stop originating messages until it catches
  // up (its apply queue passed a limit), and lets it go on again.
  void set_flow_pause(bool pause);
  // The members of the view that currently hold the group paused.
  std::vector<NodeId> paused_by() const;

  bool has_ready() const { return meta_changed_ || !ready_.empty(); }
  MemberReady take_ready();
  // What to send at once, outside the Ready, while the driver's batch is on its way to disk and
  // holds this member's heartbeats: an Alive to every member it knows, asking the group to pause
  // when this member does or when its disk is slow (slow_disk: the driver's judgement).
  std::vector<std::pair<NodeId, Message>> alive(bool slow_disk) const;
  Time heartbeat_interval() const { return cfg_.heartbeat_interval; }

  const NodeId& self() const { return self_; }
  const ViewInfo& view() const { return view_; }
  Phase phase() const { return phase_; }
  const Durable& durable() const { return d_; }
  // The payload bytes of durable().log: what a joiner keeps in memory for its transfer.
  size_t log_bytes() const { return log_bytes_; }
  // One line of internal state, for failure reports.
  std::string debug_string() const;

 private:
  struct Proposal {
    ViewKey id;
    std::vector<NodeId> members;
    Time started = 0;
    std::map<NodeId, StateReport> reports;
    std::map<NodeId, std::string> histories;  // each reporter's history, when it has one
    std::set<NodeId> installed;
    bool install_sent = false;
  };

  // membership and view change
  std::vector<NodeId> alive_set() const;
  bool pausing_outsider(const NodeId& n) const;
  void pass_over_stalled_coordinator();
  const NodeId& coordinator_of(const std::vector<NodeId>& alive) const;
  void know(const NodeId& n);
  bool still_meeting() const;
  // Positions a learner may lag the group by, in its log and in its deliveries, to get its vote.
  static constexpr uint64_t kVoteLag = 1024;
  // Whether a learner that finished its transfer holds about what the group delivered, and has
  // delivered about all it holds.
  bool vote_ready_learner() const;
  // This member is such a learner, still more than kVoteLag positions from delivering all.
  bool applying_backlog() const;
  void maybe_propose();
  void propose(std::vector<NodeId> members);
  void on_propose(const Message& m, const Propose& p);
  StateReport state_report() const;
  void on_state(const Message& m, const StateReport& r);
  void decide_install();
  void on_install(const Message& m, const Install& inst);
  void on_installed(const Message& m);
  void on_commit(const Message& m);
  void commit_view();
  void record_install(const ViewKey& id);

  // normal case
  void on_heartbeat(const Message& m, const Heartbeat& h);
  void on_flow_pause(const NodeId& from, bool pause);
  void on_data(const Message& m, const Data& d);
  void on_order_items(const std::vector<OrderItem>& items);
  void on_ack(const Message& m, const Ack& a);
  void try_deliver();
  void deliver(uint64_t seqno, const NodeId& sender, uint64_t sender_seq,
               const std::string& payload, bool at_view_change);
  void retransmit();
  void send_data(bool everything_unordered);
  void end_of_step();

  Message heartbeat() const;
  void send_heartbeat();
  // early: may leave before this step's Ready is persisted (MemberReady::early), if everything
  // queued before it in the Ready may too.
  void send(const NodeId& to, Message m, bool early = false);
  void send_to_members(const Message& m, bool early = false);
  Message make(const ViewKey& view) const;
  // The view's first voter orders: a learner's batches carry its transfer's writes, and every
  // Order it sent would wait behind them.
  const NodeId& sequencer() const;
  // Whether member n has any use for this member's Acks now (a learner catching up has none).
  bool wants_acks(const NodeId& n) const;
  bool is_sequencer() const { return !view_.members.empty() && sequencer() == self_; }
  bool flow_paused() const;
  uint64_t weight(const NodeId& n) const;
  bool operational_primary() const { return phase_ == Phase::operational && view_.primary; }

  NodeId self_;
  Durable d_;
  Config cfg_;
  Time now_ = 0;
  MemberReady ready_;
  bool meta_changed_ = false;  // d_ (but its log) changed since the last take_ready
  size_t log_bytes_ = 0;       // of d_.log's payloads: counted on each change
  void recount_log();

  std::set<NodeId> known_;
  std::map<NodeId, Time> known_since_;
  std::map<NodeId, Time> last_heard_;
  std::map<NodeId, Time> excluded_until_;
  std::map<NodeId, Time> passed_over_until_;  // stalled coordinators: none of ours until then
  std::set<NodeId> busy_;  // peers whose last message was an Alive: a batch on its way to disk
  std::set<NodeId> leaving_;
  std::set<NodeId> idle_peers_;            // peers that restarted and belong to no view
  std::map<NodeId, Time> last_member_at_;  // when each was last in a view this member started
  std::map<NodeId, ViewKey> peer_view_;    // the later of the view each peer operates in and the
                                           // view change it last promised
  bool leaving_self_ = false;
  bool flow_pause_ = false;               // this member asks the group to pause
  std::set<NodeId> synced_learners_;      // learners of the view that finished their transfer
  std::set<NodeId> applying_learners_;    // ... and still deliver what they logged meanwhile
  bool announced_applying_ = false;       // this member's last heartbeat said it applies so
  std::map<NodeId, Time> pausing_since_;  // members asking for a pause, since when
  std::set<NodeId> transferring_;  // peers whose last heartbeat said they wait for a transfer
  Time last_heartbeat_ = 0;

  Phase phase_ = Phase::idle;
  ViewInfo view_;
  ViewKey promised_;
  uint64_t seen_epoch_ = 0;  // highest view epoch in any message: proposals must go above it
  Time change_started_ = 0;
  std::optional<Install> installing_;
  std::optional<Proposal> proposal_;
  std::string last_decision_;    // why the last view this member coordinated is (not) primary
  bool restarted_ = true;        // no view committed since this member (re)started
  uint32_t outbid_retries_ = 0;  // proposals dropped at once since the last view committed

  // the current view's ordering state (positions start at 1)
  uint64_t next_pos_ = 1;                    // sequencer: next position to give
  std::map<NodeId, uint64_t> expected_seq_;  // sequencer: next sender_seq to order per sender
  std::map<uint64_t, OrderItem> entries_;    // positions received and not yet delivered/stable
  uint64_t held_ = 0;  // contiguous positions persisted (this step's included)
  uint64_t acked_sent_ = 0;
  uint64_t delivered_pos_ = 0;
  uint64_t stable_ = 0;          // positions every voter holds, as last computed
  size_t ready_deliveries_ = 0;  // in ready_, and their payload bytes
  size_t ready_delivery_bytes_ = 0;
  std::map<NodeId, uint64_t> acks_;
  std::map<NodeId, Time> last_retransmit_;

  // this member's own messages not yet delivered, in sender_seq order
  std::deque<DataItem> own_;
  uint64_t own_ordered_ = 0;  // highest own sender_seq seen ordered in this view
  uint64_t next_own_seq_ = 0;
  Time last_data_sent_ = 0;
  std::vector<DataItem> new_data_;
};

}  // namespace tutti::gcs
