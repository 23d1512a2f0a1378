#include "connection_log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "clock.h"

namespace fulcrum {

namespace {

// How often the writer takes the rings' records: every 10 ms while records
// come, every 50 ms once a batch found none (an idle balancer wakes 20 times
// a second for it, not 100), and not at all while the log is off. A worker
// ending 100,000 connections a second fills 5,000 of its ring's 8,192
// places in 50 ms.
constexpr auto kBusyInterval = std::chrono::milliseconds(10);
constexpr auto kIdleInterval = std::chrono::milliseconds(50);
constexpr auto kOffInterval = std::chrono::hours(1);
constexpr size_t kBatchRecords = 512;
// A write to a pipe or socket of at most PIPE_BUF bytes is never interleaved
// with another writer's (the process logger shares stdout): lines stay whole.
constexpr size_t kAtomicWriteBytes = 4096;
constexpr size_t kFileWriteBytes = 64 * 1024;

uint64_t next_random(uint64_t* state) {
  // xorshift64*: a cheap, good-enough draw for sampling.
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

int64_t realtime_offset_us() {
  timespec real{};
  clock_gettime(CLOCK_REALTIME, &real);
  const int64_t real_us = static_cast<int64_t>(real.tv_sec) * 1000000 + real.tv_nsec / 1000;
  return real_us - static_cast<int64_t>(monotonic_us());
}

bool write_all(int fd, const char* data, size_t length) {
  while (length > 0) {
    const ssize_t n = write(fd, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // EPIPE, ENOSPC, EBADF...: the caller counts it
    }
    data += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

struct ConnectionLog::Output {
  int fd = -1;
  bool owned = false;     // stdout is not ours to close
  bool datagram = false;  // syslog: one record per datagram
  size_t chunk = kFileWriteBytes;
  ~Output() {
    if (owned && fd >= 0) close(fd);
  }
};

ConnectionLog::ConnectionLog(uint32_t workers, uint32_t max_services)
    : workers_(workers), worker_state_(new WorkerState[workers]), stats_(workers, max_services) {
  for (uint32_t w = 0; w < workers; w++) {
    rings_.push_back(std::make_unique<ConnectionLogRing>(kRingRecords));
    worker_state_[w].random = 0x9E3779B97F4A7C15ULL * (w + 1) ^ monotonic_us();
  }
  batch_.resize(kBatchRecords);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) hostname_ = host;
  pid_ = static_cast<int>(getpid());
  clock_.realtime_offset_us = realtime_offset_us();
  labels_ = std::make_shared<const std::vector<RecordLabels>>();
  thread_ = std::thread([this] { run(); });
}

ConnectionLog::~ConnectionLog() { stop(); }

int ConnectionLog::open_output(const ConnectionLogSettings& settings, std::shared_ptr<Output>* out) {
  auto output = std::make_shared<Output>();
  switch (settings.output) {
    case ConnectionLogSettings::Output::kOff:
      break;
    case ConnectionLogSettings::Output::kStdout:
      output->fd = STDOUT_FILENO;
      break;
    case ConnectionLogSettings::Output::kFile:
      output->fd = open(settings.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (output->fd < 0) return -errno;
      output->owned = true;
      break;
    case ConnectionLogSettings::Output::kSyslog: {
      output->datagram = true;
      output->owned = true;
      if (settings.syslog_address.family() != 0) {
        output->fd = socket(settings.syslog_address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (output->fd < 0) return -errno;
        if (connect(output->fd, settings.syslog_address.get(), settings.syslog_address.length) < 0) return -errno;
      } else {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        if (settings.path.size() >= sizeof address.sun_path) return -ENAMETOOLONG;
        std::memcpy(address.sun_path, settings.path.data(), settings.path.size());
        output->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (output->fd < 0) return -errno;
        // A syslog daemon that is not there yet is an error now, not a
        // silent loss later: the config names the socket.
        if (connect(output->fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) return -errno;
      }
      break;
    }
  }
  if (!output->datagram && output->fd >= 0) {
    struct stat info{};
    if (fstat(output->fd, &info) == 0 && !S_ISREG(info.st_mode)) output->chunk = kAtomicWriteBytes;
  }
  *out = std::move(output);
  return 0;
}

int ConnectionLog::configure(const ConnectionLogSettings& settings) {
  std::shared_ptr<Output> output;
  const int result = open_output(settings, &output);
  if (result < 0) return result;
  {
    std::lock_guard lock(mutex_);
    settings_ = settings;
    output_ = std::move(output);
  }
  const double sample = settings.sample < 0 ? 0 : settings.sample > 1 ? 1 : settings.sample;
  sample_threshold_.store(static_cast<uint64_t>(sample * 4294967296.0), std::memory_order_relaxed);
  interval_ms_.store(settings.output == ConnectionLogSettings::Output::kOff ? 0 : settings.interval_ms,
                     std::memory_order_relaxed);
  enabled_.store(settings.output != ConnectionLogSettings::Output::kOff, std::memory_order_release);
  wake_.notify_all();  // a writer asleep while the log was off
  return 0;
}

int ConnectionLog::reopen() {
  ConnectionLogSettings settings;
  {
    std::lock_guard lock(mutex_);
    if (settings_.output != ConnectionLogSettings::Output::kFile) return 0;
    settings = settings_;
  }
  std::shared_ptr<Output> output;
  const int result = open_output(settings, &output);
  if (result < 0) return result;
  std::lock_guard lock(mutex_);
  output_ = std::move(output);
  return 0;
}

void ConnectionLog::set_labels(std::vector<RecordLabels> by_slot) {
  auto labels = std::make_shared<const std::vector<RecordLabels>>(std::move(by_slot));
  std::lock_guard lock(mutex_);
  labels_ = std::move(labels);
}

void ConnectionLog::record(uint32_t worker, const ConnectionRecord& record) {
  if (worker >= workers_) return;
  stats_.add(worker, record);
  if (!enabled_.load(std::memory_order_relaxed)) return;
  WorkerState& state = worker_state_[worker];
  const uint64_t threshold = sample_threshold_.load(std::memory_order_relaxed);
  if (threshold <= UINT32_MAX && (next_random(&state.random) >> 32) >= threshold) {
    state.sampled_out.store(state.sampled_out.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  if (!rings_[worker]->push(record)) {
    state.dropped.store(state.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

ConnectionLogCounters ConnectionLog::counters() const {
  ConnectionLogCounters out;
  out.written = written_.load(std::memory_order_relaxed);
  out.over_cap = over_cap_.load(std::memory_order_relaxed);
  out.write_errors = write_errors_.load(std::memory_order_relaxed);
  for (uint32_t w = 0; w < workers_; w++) {
    out.dropped += worker_state_[w].dropped.load(std::memory_order_relaxed);
    out.sampled_out += worker_state_[w].sampled_out.load(std::memory_order_relaxed);
  }
  return out;
}

void ConnectionLog::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConnectionLog::run() {
  std::unique_lock lock(mutex_);
  bool busy = false;
  for (;;) {
    const auto interval = !enabled_.load(std::memory_order_acquire) ? kOffInterval : busy ? kBusyInterval : kIdleInterval;
    // Woken early only to stop, or when configure() turned the log on.
    const bool enabled = enabled_.load(std::memory_order_acquire);
    const bool stopping = wake_.wait_for(lock, interval, [this, enabled] {
      return stopping_ || enabled_.load(std::memory_order_acquire) != enabled;
    }) && stopping_;
    lock.unlock();
    // On stop, everything the workers left in the rings is written first.
    busy = false;
    while (write_batch()) busy = true;
    lock.lock();
    if (stopping) return;
  }
}

bool ConnectionLog::write_batch() {
  std::shared_ptr<Output> output;
  std::shared_ptr<const std::vector<RecordLabels>> labels;
  ConnectionLogSettings settings;
  {
    std::lock_guard lock(mutex_);
    output = output_;
    labels = labels_;
    settings = settings_;
  }
  static const RecordLabels kUnknown{"?", "?"};
  bool any = false;
  text_.clear();
  auto flush = [&] {
    if (text_.empty()) return;
    if (!write_all(output->fd, text_.data(), text_.size())) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
    }
    text_.clear();
  };
  for (auto& ring : rings_) {
    const size_t count = ring->pop(batch_.data(), batch_.size());
    if (count == 0) continue;
    any = true;
    if (!output || output->fd < 0) continue;  // turned off since: the records are let go
    const uint64_t now = monotonic_us();
    for (size_t i = 0; i < count; i++) {
      const ConnectionRecord& record = batch_[i];
      if (settings.max_per_second > 0) {
        if (now >= cap_window_us_ + 1000000) {
          cap_window_us_ = now;
          cap_used_ = 0;
        }
        if (cap_used_ >= settings.max_per_second) {
          over_cap_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        cap_used_++;
      }
      const RecordLabels& label = record.service_slot < labels->size() ? (*labels)[record.service_slot] : kUnknown;
      const size_t line_start = text_.size();
      if (output->datagram) {
        append_syslog_header(settings.facility, hostname_, settings.tag, pid_, record_end_unix_us(record, clock_), &text_);
      }
      if (settings.text) {
        append_record_text(record, label, clock_, &text_);
      } else {
        append_record_json(record, label, clock_, &text_);
      }
      if (output->datagram) {
        if (send(output->fd, text_.data(), text_.size(), MSG_NOSIGNAL) < 0) {
          write_errors_.fetch_add(1, std::memory_order_relaxed);
        } else {
          written_.fetch_add(1, std::memory_order_relaxed);
        }
        text_.clear();
        continue;
      }
      text_.push_back('\n');
      written_.fetch_add(1, std::memory_order_relaxed);
      // Keep each write within the chunk, cut only between lines.
      if (text_.size() > output->chunk && line_start > 0) {
        std::string rest = text_.substr(line_start);
        text_.resize(line_start);
        flush();
        text_ = std::move(rest);
      }
    }
    flush();
  }
  return any;
}

}  // namespace fulcrum
