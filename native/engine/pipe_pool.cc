#include "pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace fulcrum {

PipePool::~PipePool() {
  for (Pipe& pipe : free_) destroy(&pipe);
  free_.clear();
  publish_size();
}

int PipePool::acquire(Pipe* out) {
  if (!free_.empty()) {
    *out = free_.back();
    free_.pop_back();
    publish_size();
    return 0;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
  out->read_fd = fds[0];
  out->write_fd = fds[1];
  if (!capacity_known_) {
    int size = fcntl(fds[1], F_GETPIPE_SZ);
    if (size > 0) capacity_ = static_cast<size_t>(size);
    capacity_known_ = true;
  }
  return 0;
}

void PipePool::release(Pipe* pipe) {
  if (!pipe->valid()) return;
  if (free_.size() < max_pooled_) {
    free_.push_back(*pipe);
    publish_size();
  } else {
    destroy(pipe);
  }
  *pipe = Pipe{};
}

void PipePool::destroy(Pipe* pipe) {
  if (pipe->read_fd >= 0) close(pipe->read_fd);
  if (pipe->write_fd >= 0) close(pipe->write_fd);
  *pipe = Pipe{};
}

void PipePool::publish_size() { counters_.set_worker(kPooledPipes, free_.size()); }

}  // namespace fulcrum
