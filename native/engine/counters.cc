#include "counters.h"

#include <cstdlib>
#include <new>

namespace fulcrum {

CounterArena::CounterArena(uint32_t workers)
    : workers_(workers), words_count_(kLineWords + workers * kWorkerBlockWords) {
  void* memory = std::aligned_alloc(kCacheLine, words_count_ * sizeof(uint64_t));
  if (memory == nullptr) throw std::bad_alloc();
  words_ = static_cast<std::atomic<uint64_t>*>(memory);
  for (size_t i = 0; i < words_count_; i++) new (&words_[i]) std::atomic<uint64_t>(0);
}

CounterArena::~CounterArena() { std::free(words_); }

}  // namespace fulcrum
