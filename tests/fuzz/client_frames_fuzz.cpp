// libFuzzer target: the client protocol's decoders, fed hostile bytes as a stream of frames the
// way the server reads them. A decoder may only throw DecodeError; anything else (another
// exception, a crash, a sanitizer report) is a bug. What decodes must encode and decode again to
// the same write-set or outcome.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/codec.hpp"

using namespace tutti::core;

namespace {

void decode_all(std::string_view payload) {
  try {
    Request r = decode_request(payload);
    (void)encode_request(r);
  } catch (const DecodeError&) {
  }
  try {
    Response r = decode_response(payload);
    (void)encode_response(r);
  } catch (const DecodeError&) {
  }
  try {
    WriteSet ws = decode_writeset(payload);
    if (!(decode_writeset(encode_writeset(ws)) == ws)) std::abort();
  } catch (const DecodeError&) {
  }
  try {
    Outcome o = decode_outcome(payload);
    if (!(decode_outcome(encode_outcome(o)) == o)) std::abort();
  } catch (const DecodeError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  decode_all(in);  // the bytes as one payload
  // ... and as frames: u32 length | payload, as many as fit, as the server splits them.
  while (in.size() >= kFrameHeaderBytes) {
    const uint32_t len = frame_length(in);
    if (len > in.size() - kFrameHeaderBytes) break;
    decode_all(in.substr(kFrameHeaderBytes, len));
    in.remove_prefix(kFrameHeaderBytes + len);
  }
  return 0;
}
