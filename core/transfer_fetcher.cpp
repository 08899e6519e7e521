#include "core/transfer_fetcher.hpp"

#include <memory>

#include <spdlog/spdlog.h>

#include "core/address.hpp"
#include "gcs/invariant.hpp"

namespace tutti::core {

TransferFetcher::TransferFetcher(std::function<void(std::function<void()>)> post)
    : post_(std::move(post)), thread_([this] { run(); }) {}

TransferFetcher::~TransferFetcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void TransferFetcher::fetch(std::string address, Request request, Done done) {
  {
    std::lock_guard lock(mu_);
    TUTTI_INVARIANT(!job_, "a transfer pull sent while the last one is under way");
    job_ = Job{std::move(address), std::move(request), std::move(done)};
  }
  wake_.notify_one();
}

void TransferFetcher::run() {
  // Shorter than the joiner's own timeout, so the answer "none" arrives before it gives up.
  constexpr std::chrono::seconds kTimeout(8);
  std::unique_ptr<Client> client;
  std::string connected_to;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || job_; });
      if (stopping_) return;
      job = std::move(*job_);
      job_.reset();
    }
    std::optional<Response> answer;
    try {
      if (!client || !client->connected() || connected_to != job.address) {
        client = std::make_unique<Client>(kTimeout);
        client->connect(parse_host_port(job.address));
        connected_to = job.address;
      }
      answer = client->call(std::move(job.request));
    } catch (const std::exception& e) {
      spdlog::warn("state transfer: pull from {} failed: {}", job.address, e.what());
      client.reset();
      connected_to.clear();
    }
    post_([done = std::move(job.done), answer = std::move(answer)]() mutable {
      done(std::move(answer));
    });
  }
}

}  // namespace tutti::core
