// What an epoll event's data.ptr points at: a tag saying which kind of object
// owns the fd, so the worker can dispatch without virtual calls per event.
#pragma once

#include <cstdint>

namespace fulcrum {

struct IoHandle {
  enum class Kind : uint8_t { kMailbox, kListener, kClient, kBackend, kUdpListener, kUdpUpstream, kPgCancel, kKernelRelay };
  Kind kind;
  void* owner;
};

}  // namespace fulcrum
