// libFuzzer target: the group protocol's decoders (link frames, log entries, durable state), fed
// hostile bytes. A decoder may only throw WireError; anything else is a bug. A frame that decodes
// must encode and decode again.
#include <cstdint>
#include <string_view>

#include "gcs/wire.hpp"

using namespace tutti::gcs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    Frame f = decode_frame(in);
    (void)decode_frame(encode_frame(f));
  } catch (const WireError&) {
  }
  try {
    LogEntry e = decode_log_entry(in);
    (void)decode_log_entry(encode_log_entry(e));
  } catch (const WireError&) {
  }
  try {
    Durable d = decode_durable(in);
    (void)decode_durable(encode_durable(d));
  } catch (const WireError&) {
  }
  return 0;
}
