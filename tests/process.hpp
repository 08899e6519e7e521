// Helpers to run tuttid and tutti as real processes on loopback. Every process started here is
// killed by its pid when its Process object goes away.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace tutti::test {

// A TCP port on 127.0.0.1 that was free a moment ago.
uint16_t free_port();

class Process {
 public:
  Process() = default;
  Process(const std::vector<std::string>& argv, const std::filesystem::path& log);
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  ~Process();

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int signo);
  // Waits for the process to exit; returns its exit status (128+signal when killed), or -1 on
  // timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void kill9();

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion, feeding input on stdin.
CliResult run(const std::vector<std::string>& argv, const std::string& input = "");

// A tuttid on loopback with its own data dir.
struct NodeProcess {
  std::string name;
  std::filesystem::path data_dir;
  uint16_t client_port = 0;
  uint16_t gcs_port = 0;
  std::filesystem::path log;
  Process process;
  std::vector<std::string> wrapper;  // runs tuttid under this command (prlimit ..., say)

  std::string client_addr() const { return "127.0.0.1:" + std::to_string(client_port); }
  // Starts tuttid and waits until its client port answers. extra: more flags.
  void start(const std::vector<std::string>& extra = {});
  std::string log_text() const;
};

bool wait_for_port(uint16_t port, std::chrono::milliseconds timeout);
// A TCP connection to 127.0.0.1:port, as a file descriptor the caller closes; throws on failure.
int connect_loopback(uint16_t port);

}  // namespace tutti::test
