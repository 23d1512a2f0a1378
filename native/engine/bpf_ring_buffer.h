// The consumer side of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF), read
// through its mmap()ed pages: the way a BPF program tells user space about
// an event without user space polling a map. Its fd goes into epoll; it is
// readable while records wait. One consumer per ring (the owning thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace fulcrum::bpf {

class RingBuffer {
 public:
  RingBuffer() = default;
  ~RingBuffer();
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  // Maps the ring of `map_fd` (data_size: the map's max_entries, a power of
  // two and a multiple of the page size). Returns 0 or -errno.
  int open(int map_fd, size_t data_size, std::string* error);
  // Calls on_record for every complete record, in order, then frees them.
  // Returns how many records were read.
  size_t consume(const std::function<void(const void* data, uint32_t size)>& on_record);

 private:
  void* consumer_page_ = nullptr;
  void* producer_pages_ = nullptr;
  size_t data_size_ = 0;
  size_t page_size_ = 0;
};

}  // namespace fulcrum::bpf
