// Cap'n Proto <-> bytes helpers shared by every wire and disk format (gcs/wire.cpp and
// core/codec.cpp). Readers treat their input as hostile: every complaint becomes an Error.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace tutti::capnp_bytes {

inline capnp::Data::Reader as_data(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
// Text from a std::string with its length, not up to the first NUL (the implicit conversion
// goes through c_str()): a text that held a NUL would otherwise come back shorter.
// REQUIRES: s outlives the reader (std::string keeps the NUL after its last byte).
inline capnp::Text::Reader as_text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}
inline std::string str(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline std::string str(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

// Cap'n Proto's default first segment is 8 KiB, zeroed, for every message: most of ours are a
// few hundred bytes. Start near the expected size; the builder grows if it must.
inline unsigned first_segment_words(size_t payload_bytes) {
  return static_cast<unsigned>(
      std::min<size_t>(payload_bytes / sizeof(capnp::word) + 64, size_t{1} << 17));
}

// The message's flat-array form after `prefix` bytes of room (a frame header, say), written
// straight from its segments: one copy, however large the message.
inline std::string to_bytes(capnp::MessageBuilder& message, size_t prefix = 0) {
  auto segments = message.getSegmentsForOutput();
  const size_t bytes = capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word);
  std::string out(prefix + bytes, '\0');
  kj::ArrayOutputStream stream(
      kj::arrayPtr(reinterpret_cast<kj::byte*>(out.data()) + prefix, bytes));
  capnp::writeMessage(stream, segments);
  return out;
}

// Runs fn on a reader of Root over bytes; a malformed message throws Error naming `what`.
template <typename Error, typename Root, typename Fn>
auto with_reader(std::string_view bytes, std::string_view what, Fn&& fn) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty())
    throw Error(
        fmt::format("malformed {}: {} bytes is not a whole number of words", what, bytes.size()));
  // Read in place when the bytes are word-aligned (a buffer of their own, as a client's answer
  // is); else copy them into aligned memory (a frame inside a stream of frames).
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()),
                         bytes.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), bytes.data(), bytes.size());
    words = copy;
  }
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = words.size() * 4 + 1024;
    capnp::FlatArrayMessageReader reader(words, options);
    return fn(reader.template getRoot<Root>());
  } catch (const Error&) {
    throw;
  } catch (const kj::Exception& e) {
    throw Error(fmt::format("malformed {}: {}", what, e.getDescription().cStr()));
  } catch (const std::exception& e) {
    throw Error(fmt::format("malformed {}: {}", what, e.what()));
  }
}

}  // namespace tutti::capnp_bytes
