#include "core/transfer_fetcher.hpp"

#include <spdlog/spdlog.h>

#include "core/address.hpp"
#include "gcs/invariant.hpp"

namespace tutti::core {

// The Joiner has one pull in flight: room for one more queued is plenty.
TransferFetcher::TransferFetcher(std::function<void(std::function<void()>)> post)
    : worker_(std::move(post), 1, ThreadPriority::background, "transfer fetch thread") {}

void TransferFetcher::fetch(std::string address, Request request, Done done) {
  auto answer = std::make_shared<std::optional<Response>>();
  const bool queued = worker_.submit(
      [this, answer, address = std::move(address), request = std::move(request)]() mutable {
        *answer = call(address, std::move(request));
      },
      [answer, done = std::move(done)] { done(std::move(*answer)); });
  TUTTI_INVARIANT(queued, "a transfer pull sent while the last one is under way");
}

std::optional<Response> TransferFetcher::call(const std::string& address, Request request) {
  // Shorter than the joiner's own timeout, so the answer "none" arrives before it gives up.
  constexpr std::chrono::seconds kTimeout(8);
  try {
    if (!client_ || !client_->connected() || connected_to_ != address) {
      client_ = std::make_unique<Client>(kTimeout);
      client_->connect(parse_host_port(address));
      connected_to_ = address;
    }
    return client_->call(std::move(request));
  } catch (const std::exception& e) {
    spdlog::warn("state transfer: pull from {} failed: {}", address, e.what());
    client_.reset();
    connected_to_.clear();
    return std::nullopt;
  }
}

}  // namespace tutti::core
