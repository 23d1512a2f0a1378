#include "bpf_ring_buffer.h"

#include <atomic>
#include <cerrno>
#include <cstring>

#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

namespace fulcrum::bpf {
namespace {

// The kernel's record header (BPF_RINGBUF_HDR_SZ): the length with two flag
// bits, and the page offset the kernel uses to find the ring from a record.
constexpr uint32_t kBusyBit = 1u << 31;
constexpr uint32_t kDiscardBit = 1u << 30;
constexpr size_t kHeaderBytes = 8;

}  // namespace

RingBuffer::~RingBuffer() {
  if (consumer_page_) munmap(consumer_page_, page_size_);
  if (producer_pages_) munmap(producer_pages_, page_size_ + 2 * data_size_);
}

int RingBuffer::open(int map_fd, size_t data_size, std::string* error) {
  page_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  data_size_ = data_size;
  // Page 0: the consumer position, ours to write. Then the producer position
  // (read only) and the data, mapped twice in a row by the kernel so that a
  // record that wraps can be read in one piece.
  void* consumer = mmap(nullptr, page_size_, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (consumer == MAP_FAILED) {
    const int e = errno;
    if (error) *error = std::string("mapping the BPF ring buffer: ") + strerror(e);
    return -e;
  }
  void* producer = mmap(nullptr, page_size_ + 2 * data_size_, PROT_READ, MAP_SHARED, map_fd,
                        static_cast<off_t>(page_size_));
  if (producer == MAP_FAILED) {
    const int e = errno;
    munmap(consumer, page_size_);
    if (error) *error = std::string("mapping the BPF ring buffer: ") + strerror(e);
    return -e;
  }
  consumer_page_ = consumer;
  producer_pages_ = producer;
  return 0;
}

size_t RingBuffer::consume(const std::function<void(const void* data, uint32_t size)>& on_record) {
  if (!consumer_page_) return 0;
  auto* consumer_position = static_cast<uint64_t*>(consumer_page_);
  const auto* producer_position = static_cast<const uint64_t*>(producer_pages_);
  const auto* data = static_cast<const uint8_t*>(producer_pages_) + page_size_;
  const size_t mask = data_size_ - 1;
  size_t records = 0;
  uint64_t consumed = __atomic_load_n(consumer_position, __ATOMIC_RELAXED);
  for (;;) {
    const uint64_t produced = __atomic_load_n(producer_position, __ATOMIC_ACQUIRE);
    if (consumed >= produced) break;
    bool stop = false;
    while (consumed < produced) {
      const uint8_t* record = data + (consumed & mask);
      const uint32_t header = __atomic_load_n(reinterpret_cast<const uint32_t*>(record), __ATOMIC_ACQUIRE);
      if (header & kBusyBit) {  // still being written
        stop = true;
        break;
      }
      const uint32_t size = header & ~(kBusyBit | kDiscardBit);
      if (!(header & kDiscardBit)) {
        on_record(record + kHeaderBytes, size);
        records++;
      }
      consumed += (size + kHeaderBytes + 7) & ~static_cast<uint64_t>(7);
      __atomic_store_n(consumer_position, consumed, __ATOMIC_RELEASE);
    }
    if (stop) break;
  }
  return records;
}

}  // namespace fulcrum::bpf
