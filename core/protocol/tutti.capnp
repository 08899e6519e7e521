# Wire and log formats of core/: client protocol, write-sets, recorded transaction outcomes.
# Every top-level message carries a format or protocol version; see docs/protocol.md.
@0xf0e8389d15637c0b;

$import "/capnp/c++.capnp".namespace("tutti::wire");

struct ReadItem {
  key @0 :Data;
  version @1 :UInt64;    # 0 = the key was absent
}

struct WriteItem {
  key @0 :Data;
  union {
    value @1 :Data;
    delete @2 :Void;
  }
}

# A transaction as replicated through the group and kept in the write-set log.
struct WriteSet {
  formatVersion @0 :UInt16;
  origin @1 :Data;       # node uuid (16 bytes)
  txnId @2 :Data;        # client-chosen, unique per transaction
  reads @3 :List(ReadItem);
  writes @4 :List(WriteItem);
  marker @5 :Bool;       # a read marker: certifies and writes nothing, only takes its place
}

# What certification decided for a transaction id, kept so a retry gets the same answer.
struct TxnOutcome {
  formatVersion @0 :UInt16;
  seqno @1 :UInt64;
  committed @2 :Bool;
  conflictKeys @3 :List(Data);
  rejected @4 :Text;     # non-empty: the write-set was malformed and never certified
  fingerprint @5 :UInt64;  # XXH3 of the reads and writes decided; 0 in records made before it
}

enum Consistency {
  linearizable @0;
  local @1;
}

struct Request {
  protocolVersion @0 :UInt16;
  id @1 :UInt64;
  union {
    get @2 :Get;
    scan @3 :Scan;
    commit @4 :Commit;
    status @5 :Void;
    members @6 :Void;
    watchViews @7 :UInt64;   # answered once a view change later than this number is installed
    transfer @8 :Transfer;   # a joiner pulls state from a donor (docs/transfer.md)
  }

  struct Transfer {
    history @0 :Data;        # the joiner's cluster history: a donor of another refuses
    union {
      log @1 :LogPull;
      snapshot @2 :SnapshotPull;
    }
    joiner @3 :Text;         # the joiner's name, for the donor's log and status
  }
  # Write-sets from the donor's log, seqnos from..through, up to maxBytes.
  struct LogPull {
    from @0 :UInt64;
    through @1 :UInt64;
    maxBytes @2 :UInt32;
  }
  # session 0 starts a snapshot; then the entries after the cursor, up to maxBytes.
  struct SnapshotPull {
    session @0 :UInt64;
    cursor @1 :SnapshotCursor;
    maxBytes @2 :UInt32;
    seqno @3 :UInt64;        # the session's snapshot seqno (0 when starting): a donor that
                             # restarted and reused the number for another snapshot refuses
    reconcile @4 :Reconcile; # when starting: the part staged at the joiner to carry forward
    layout @5 :UInt16;       # the storage format of the joiner's state tables (0: format 2)
  }

  struct Get {
    key @0 :Data;
    consistency @1 :Consistency;
  }
  struct Scan {
    prefix @0 :Data;
    limit @1 :UInt32;
    consistency @2 :Consistency;
  }
  struct Commit {
    txnId @0 :Data;
    reads @1 :List(ReadItem);
    writes @2 :List(WriteItem);
  }
}

# Where a snapshot's stream stands: past `after` in table `table` (0 data, 1 and 2 the transaction
# records of even and odd generations).
struct SnapshotCursor {
  table @0 :UInt8;
  started @1 :Bool;
  after @2 :Data;
}

# One entry of a state table, as stored (a data value starts with its 8-byte LE version).
struct TableItem {
  table @0 :UInt8;
  key @1 :Data;
  value @2 :Data;
  kept @3 :Bool;           # the joiner holds it already (Reconcile): the value is the version alone
}

# A snapshot that carries forward the data a joiner staged from an older one (docs/transfer.md):
# the staged data entries up to `through` are as they were at seqno `since` or later, none later
# than `newest`.
struct Reconcile {
  since @0 :UInt64;
  newest @1 :UInt64;
  through @2 :SnapshotCursor;
}

struct SenderHigh {
  sender @0 :Data;
  seq @1 :UInt64;
}

enum ErrorCode {
  badRequest @0;
  unavailable @1;
  notPrimary @2;
  tooLarge @3;
  storage @4;
  internal @5;
  unsupportedVersion @6;
  busy @7;
  txnIdReused @8;  # the transaction id was decided before for a different transaction
}

struct Response {
  protocolVersion @0 :UInt16;
  id @1 :UInt64;
  union {
    error @2 :Error;
    value @3 :Value;
    entries @4 :Entries;
    commit @5 :CommitResult;
    status @6 :Status;
    members @7 :Members;
    views @8 :Views;
    transfer @9 :TransferChunk;
  }

  struct TransferChunk {
    union {
      log @0 :LogChunk;
      snapshot @1 :SnapshotChunk;
    }
  }
  struct LogChunk {
    covered @0 :Bool;          # false: the donor's log no longer (or not yet) holds `from`
    donorCommitted @1 :UInt64;
    entries @2 :List(Data);    # log entries (gcs LogEntry) from `from` on, contiguous
  }
  struct SnapshotChunk {
    session @0 :UInt64;
    seqno @1 :UInt64;          # the snapshot's: the state is that after this seqno
    contentHash @2 :Data;      # 16 bytes: lo, hi (LE)
    certHash @3 :Data;         # the certification hash chain at seqno
    senderHigh @4 :List(SenderHigh);
    totalBytes @5 :UInt64;     # what the state tables take at the donor, about
    items @6 :List(TableItem);
    cursor @7 :SnapshotCursor; # after these items; its table is 3 once the stream is done
    tablePageBytes @8 :List(UInt64);  # per state table: the bytes its pages take (none or 3)
    layout @9 :UInt16;         # the storage format of the donor's state tables (0: format 2)
  }

  struct Error {
    code @0 :ErrorCode;
    message @1 :Text;
  }
  struct Value {
    found @0 :Bool;
    value @1 :Data;
    version @2 :UInt64;
    mayBeStale @3 :Bool;
  }
  struct Entry {
    key @0 :Data;
    value @1 :Data;
    version @2 :UInt64;
  }
  struct Entries {
    entries @0 :List(Entry);
    mayBeStale @1 :Bool;
    truncated @2 :Bool;    # stopped at the node's reply size limit before the asked limit
  }
  struct CommitResult {
    committed @0 :Bool;
    seqno @1 :UInt64;
    conflictKeys @2 :List(Data);
    duplicate @3 :Bool;    # the txn id was seen before; this is its recorded outcome
  }
  struct Status {
    name @0 :Text;
    state @1 :Text;
    primary @2 :Bool;
    clusterSize @3 :UInt32;
    lastCommitted @4 :UInt64;
    historyUuid @5 :Text;
    contentHash @6 :Text;
    nodeUuid @7 :Text;
    durability @8 :Text;
    viewId @9 :Text;
    pausedBy @10 :List(Text);   # names of the members holding the group paused (flow control)
    waitingFor @11 :Text;       # when not primary: what this node waits for, in words
    transfer @12 :TransferProgress;  # absent (empty kind) when no transfer runs
  }
  struct TransferProgress {
    kind @0 :Text;       # "snapshot" or "incremental"
    role @1 :Text;       # "joiner" or "donor"
    peer @2 :Text;       # the other side's name
    done @3 :UInt64;
    total @4 :UInt64;
    unit @5 :Text;       # "bytes" or "write-sets"
    rate @6 :Float64;    # units per second
    etaS @7 :Float64;
  }
  struct Member {
    name @0 :Text;
    uuid @1 :Text;
    gcsAddr @2 :Text;
    clientAddr @3 :Text;
    state @4 :Text;
    lastCommitted @5 :UInt64;
    pausing @6 :Bool;
  }
  struct Members {
    viewId @0 :Text;
    primary @1 :Bool;
    members @2 :List(Member);
  }
  struct ViewChange {
    number @0 :UInt64;         # counts the view changes this node installed since it started
    viewId @1 :Text;
    primary @2 :Bool;
    members @3 :List(Text);    # names
    lastCommitted @4 :UInt64;
  }
  struct Views {
    changes @0 :List(ViewChange);
  }
}

# Kept in a joiner's meta ("snapshot_resume") with each staged chunk: where its snapshot stands,
# so that a joiner that restarted, or lost its donor for a moment, resumes the donor's session
# rather than starting over (docs/transfer.md).
struct SnapshotResume {
  formatVersion @0 :UInt16;
  donor @1 :Data;                       # node uuid of the donor that holds the session
  header @2 :Response.SnapshotChunk;    # no items; its cursor is after what is staged
  stagedHash @3 :Data;                  # content hash of the staged data: lo, hi (LE)
  receivedBytes @4 :UInt64;
  tableBytesGot @5 :List(UInt64);       # per state table: bytes staged (keys, values; none or 3)
  reconcile @6 :Reconcile;              # the session carries forward this part staged before it
}
