// The one clock of the data plane: CLOCK_MONOTONIC (a vDSO call, no syscall).
#pragma once

#include <time.h>

#include <cstdint>

namespace fulcrum {

inline uint64_t monotonic_us() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

inline uint64_t monotonic_ms() { return monotonic_us() / 1000; }

}  // namespace fulcrum
