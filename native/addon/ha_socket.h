// The JS class `VrrpSocket` of the addon: the native half of a VRRP instance
// (src/ha/). It owns the raw protocol-112 socket, the gratuitous-ARP packet
// socket and one reader thread; received datagrams reach JS in batches
// through a thread-safe function, so the JS thread never blocks on the socket.
//
// JS API (typed in src/engine/native.ts):
//   new VrrpSocket({ interface, joinGroup, onPackets(packets: Buffer[], dropped) })
//       throws Error{code: errno name} (ENODEV, EPERM...)
//   socket.send(destination, source, payload) -> bytes   (IPv4 text, Buffer)
//   socket.garp(ip)                                        one gratuitous ARP
//   socket.mac                                             "aa:bb:cc:dd:ee:ff"
//   socket.setAddress(add, ip, prefixLength) -> 0 | -errno  rtnetlink, on this interface
//       (-EEXIST / -EADDRNOTAVAIL are answers, not exceptions: JS decides)
//   socket.close()                                         idempotent; joins the reader
//
// Each packet is the whole IPv4 datagram as received (header included, for the
// TTL check). At most kMaxQueued wait for JS; beyond that they are dropped and
// the count is passed as `dropped` with the next batch.
#pragma once

#include <napi.h>

#include <memory>
#include <thread>

#include "../ha/garp.h"
#include "env_cleanup.h"

namespace fulcrum::addon {

struct VrrpReaderQueue;

class VrrpSocketHandle : public Napi::ObjectWrap<VrrpSocketHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit VrrpSocketHandle(const Napi::CallbackInfo& info);
  ~VrrpSocketHandle() override;

 private:
  Napi::Value send(const Napi::CallbackInfo& info);
  Napi::Value garp(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value mac(const Napi::CallbackInfo& info);
  Napi::Value set_address(const Napi::CallbackInfo& info);

  // Stops the reader, closes both sockets, releases the thread-safe function.
  // Safe more than once: from close(), the finalizer or the env cleanup hook.
  void shutdown();
  // Reader thread: poll() the raw socket and the stop eventfd, queue datagrams.
  static void read_loop(int fd, int stop_fd, std::shared_ptr<VrrpReaderQueue> queue, Napi::ThreadSafeFunction tsfn);

  int fd_ = -1;
  int stop_fd_ = -1;
  ha::GarpSocket garp_;
  std::thread reader_;
  std::shared_ptr<VrrpReaderQueue> queue_;
  Napi::ThreadSafeFunction tsfn_;
  bool tsfn_live_ = false;
  EnvCleanupHook cleanup_;
};

}  // namespace fulcrum::addon
