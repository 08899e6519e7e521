// The Cap'n Proto encoding of state transfer's requests and replies (internal to core/codec).
#pragma once

#include "core/messages.hpp"
#include "core/protocol/tutti.capnp.h"

namespace tutti::core::codec {

void set_transfer_request(wire::Request::Transfer::Builder out, const TransferRequest& t);
TransferRequest transfer_request_from(wire::Request::Transfer::Reader r);
void set_transfer_reply(wire::Response::TransferChunk::Builder out, const TransferReply& t);
TransferReply transfer_reply_from(wire::Response::TransferChunk::Reader r);
void set_progress(wire::Response::TransferProgress::Builder out, const TransferProgress& p);
TransferProgress progress_from(wire::Response::TransferProgress::Reader r);
// A size hint for the builder's first segment.
size_t transfer_reply_bytes(const TransferReply& t);

}  // namespace tutti::core::codec
