#include "core/marked_reads.hpp"

#include <fmt/format.h>

namespace tutti::core {

std::string MarkedReads::next_marker_id() const {
  return fmt::format("marker-{}", seq_ + 1);
}

void MarkedReads::sent() {
  out_ = next_marker_id();
  ++seq_;
  marked_ = std::move(next_);
  next_.clear();
}

std::vector<MarkedReads::Read> MarkedReads::applied(const std::string& marker_id) {
  if (marker_id != out_) return {};
  auto reads = std::move(marked_);
  marked_.clear();
  out_.clear();
  return reads;
}

std::vector<MarkedReads::Read> MarkedReads::take_all() {
  auto reads = std::move(marked_);
  for (auto& r : next_) reads.push_back(std::move(r));
  marked_.clear();
  next_.clear();
  out_.clear();
  return reads;
}

}  // namespace tutti::core
