# Wire and disk formats of gcs/: the links between members, the group protocol's messages, and
# what a member persists. docs/gcs.md describes the protocol; every link starts with a Hello.
@0xc4d1a2b3e5f60718;

$import "/capnp/c++.capnp".namespace("tutti::gcs::wire");

struct ViewKey {
  epoch @0 :UInt64;
  coordinator @1 :Data;
}

struct ViewInfo {
  id @0 :ViewKey;
  members @1 :List(Data);
  primary @2 :Bool;
  base @3 :UInt64;
  learners @4 :List(Data);             # members without a vote: they entered needing a transfer
}

struct Seq {
  node @0 :Data;
  seq @1 :UInt64;
}

struct DataItem {
  seq @0 :UInt64;
  payload @1 :Data;
}

struct OrderItem {
  pos @0 :UInt64;
  sender @1 :Data;
  senderSeq @2 :UInt64;
  payload @3 :Data;
}

struct StateReport {
  current @0 :ViewInfo;
  lastPrimary @1 :ViewInfo;            # each optional view is absent when not set
  lastCommitted @2 :ViewInfo;
  previousPrimary @3 :ViewInfo;
  installs @4 :List(ViewKey);
  lineageHeld @5 :UInt64;
  delivered @6 :UInt64;
  needsTransfer @7 :Bool;
  restarted @8 :Bool;
}

struct Install {
  view @0 :ViewInfo;
  joiners @1 :List(Data);
  predecessor @2 :ViewKey;             # absent: none
  predecessorView @3 :ViewInfo;
  delivered @4 :List(Seq);
}

struct Message {
  version @0 :UInt16;
  from @1 :Data;
  history @2 :Data;
  view @3 :ViewKey;
  union {
    heartbeat @4 :Heartbeat;
    data @5 :DataMsg;
    order @6 :List(OrderItem);
    ack @7 :UInt64;
    propose @8 :List(Data);
    state @9 :StateReport;
    install @10 :Install;
    installed @11 :Void;
    commit @12 :Void;
    alive @13 :Alive;
  }

  struct Heartbeat {
    held @0 :UInt64;
    leaving @1 :Bool;
    known @2 :List(Data);
    promised @3 :ViewKey;
    idle @4 :Bool;
    installed @5 :Bool;
    flowPause @6 :Bool;
    needsTransfer @7 :Bool;
    applying @8 :Bool;
  }
  struct Alive {
    flowPause @0 :Bool;
  }
  struct DataMsg {
    lowest @0 :UInt64;
    items @1 :List(DataItem);
  }
}

# A member as the directory knows it: identity, addresses and its last reported progress.
struct Peer {
  uuid @0 :Data;
  name @1 :Text;
  gcsAddr @2 :Text;
  clientAddr @3 :Text;
  state @4 :Text;
  lastCommitted @5 :UInt64;
}

# Everything that travels on a link between two members.
struct Frame {
  union {
    hello @0 :Hello;           # the dialer's first frame
    welcome @1 :Welcome;       # the answer to hello: accepted, or refused with the reason
    directory @2 :List(Peer);  # the members the sender knows, itself first
    message @3 :Message;
  }
}

struct Hello {
  protocolVersion @0 :UInt16;
  clusterName @1 :Text;
  history @2 :Data;            # empty: the dialer belongs to no history yet
  self @3 :Peer;
}

struct Welcome {
  protocolVersion @0 :UInt16;
  accepted @1 :Bool;
  reason @2 :Text;
  self @3 :Peer;
  history @4 :Data;
  # The welcoming node's cluster name and whether it is in a primary component: a node of
  # another history refused by a primary one moves its data aside and joins (docs/transfer.md).
  clusterName @5 :Text;
  primary @6 :Bool;
}

# One entry of the write-set log (storage's wscache value).
struct LogRecord {
  formatVersion @0 :UInt16;
  seqno @1 :UInt64;
  view @2 :ViewKey;
  sender @3 :Data;
  senderSeq @4 :UInt64;
  payload @5 :Data;
}

# The member's durable state but its log (storage meta "gcs_state").
struct DurableState {
  formatVersion @0 :UInt16;
  history @1 :Data;
  lastPrimary @2 :ViewInfo;
  lastCommitted @3 :ViewInfo;
  previousPrimary @4 :ViewInfo;
  installs @5 :List(ViewKey);
  needsTransfer @6 :Bool;
  delivered @7 :UInt64;
  promised @8 :ViewKey;
  incarnation @9 :UInt64;
  senderHigh @10 :List(Seq);
}
