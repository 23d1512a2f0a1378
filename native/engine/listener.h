// Listening sockets. Each worker has its own socket per listen address, all
// bound with SO_REUSEPORT so the kernel spreads connections across workers
// without a shared accept lock.
#pragma once

#include "address.h"

namespace fulcrum {

// Opens a non-blocking TCP socket bound to address and listening.
// Returns the fd, or -errno (EADDRINUSE, EADDRNOTAVAIL, EACCES, EMFILE...).
int open_tcp_listener(const SocketAddress& address);

}  // namespace fulcrum
