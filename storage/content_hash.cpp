#include "storage/content_hash.hpp"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <fmt/format.h>

namespace tutti::storage {
namespace {

XXH128_hash_t entry_hash(std::string_view key, uint64_t version, std::string_view value) {
  // Length-prefix the key so that (key="ab", value="c") and (key="a", value="bc") differ.
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  const uint64_t key_len = key.size();
  XXH3_128bits_update(&state, &key_len, sizeof key_len);
  XXH3_128bits_update(&state, key.data(), key.size());
  XXH3_128bits_update(&state, &version, sizeof version);
  XXH3_128bits_update(&state, value.data(), value.size());
  return XXH3_128bits_digest(&state);
}

}  // namespace

void ContentHash::add(std::string_view key, uint64_t version, std::string_view value) {
  const XXH128_hash_t h = entry_hash(key, version, value);
  const uint64_t lo = lo_ + h.low64;
  hi_ += h.high64 + (lo < lo_ ? 1 : 0);
  lo_ = lo;
}

void ContentHash::remove(std::string_view key, uint64_t version, std::string_view value) {
  const XXH128_hash_t h = entry_hash(key, version, value);
  const uint64_t borrow = lo_ < h.low64 ? 1 : 0;
  lo_ -= h.low64;
  hi_ -= h.high64 + borrow;
}

std::string ContentHash::hex() const {
  return fmt::format("{:016x}{:016x}", hi_, lo_);
}

}  // namespace tutti::storage
