// Pipes for splice(). A connection takes a pipe for a direction only while
// bytes are in flight and gives it back once the pipe is empty (as HAProxy
// does), so thousands of idle database connections hold no pipes. Empty pipes
// are kept for reuse up to a bound. Single-threaded: one pool per worker.
#pragma once

#include <cstddef>
#include <vector>

#include "counters.h"

namespace fulcrum {

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  bool valid() const { return read_fd >= 0; }
};

class PipePool {
 public:
  PipePool(WorkerCounters counters, size_t max_pooled) : counters_(counters), max_pooled_(max_pooled) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // Returns 0 and a pipe in *out, or -errno (EMFILE, ENFILE) when none can be made.
  int acquire(Pipe* out);
  // Gives back a pipe that holds no data; *pipe is reset.
  void release(Pipe* pipe);
  // Closes a pipe that may still hold data (those bytes are discarded).
  static void destroy(Pipe* pipe);
  // Usable bytes in a pipe from this pool.
  size_t capacity() const { return capacity_; }

 private:
  void publish_size();
  WorkerCounters counters_;
  size_t max_pooled_;
  size_t capacity_ = 65536;
  bool capacity_known_ = false;
  std::vector<Pipe> free_;
};

}  // namespace fulcrum
