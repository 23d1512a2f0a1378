#include "ha_socket.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "../ha/netlink_address.h"
#include "../ha/vrrp_socket.h"
#include "errors.h"

namespace fulcrum::addon {

namespace {

// Datagrams waiting for JS. A VRRP peer sends a few per second; a flood beyond
// this is dropped (and counted) rather than buffered without bound.
constexpr size_t kMaxQueued = 4096;
// Larger than any valid advert (20-byte IP header with options up to 60, 8-byte
// VRRP header, 255 IPv4 addresses); longer datagrams are reported truncated.
constexpr size_t kMaxDatagram = 2048;

uint32_t parse_ipv4(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsString()) throw Napi::TypeError::New(env, std::string(what) + " must be an IPv4 address string");
  in_addr address{};
  if (inet_pton(AF_INET, value.As<Napi::String>().Utf8Value().c_str(), &address) != 1) {
    throw Napi::TypeError::New(env, std::string(what) + " is not an IPv4 address");
  }
  return address.s_addr;
}

}  // namespace

struct VrrpReaderQueue {
  std::mutex mutex;
  std::vector<std::vector<uint8_t>> packets;
  uint64_t dropped = 0;
};

Napi::Function VrrpSocketHandle::define_class(Napi::Env env) {
  return DefineClass(env, "VrrpSocket",
                     {
                         InstanceMethod<&VrrpSocketHandle::send>("send"),
                         InstanceMethod<&VrrpSocketHandle::garp>("garp"),
                         InstanceMethod<&VrrpSocketHandle::close>("close"),
                         InstanceMethod<&VrrpSocketHandle::set_address>("setAddress"),
                         InstanceAccessor<&VrrpSocketHandle::mac>("mac"),
                     });
}

VrrpSocketHandle::VrrpSocketHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VrrpSocketHandle>(info) {
  Napi::Env env = info.Env();
  Napi::Object options = options_argument(info, "VrrpSocket options");
  Napi::Value ifname = options.Get("interface");
  Napi::Value on_packets = options.Get("onPackets");
  if (!ifname.IsString()) throw Napi::TypeError::New(env, "VrrpSocket options.interface must be a string");
  if (!on_packets.IsFunction()) throw Napi::TypeError::New(env, "VrrpSocket options.onPackets must be a function");
  const std::string name = ifname.As<Napi::String>().Utf8Value();
  const bool join_group = options.Get("joinGroup").ToBoolean().Value();

  int fd = ha::vrrp_socket_open(name.c_str(), join_group);
  if (fd < 0) throw errno_error(env, -fd, "opening the VRRP socket on " + name);
  int result = ha::garp_open(name.c_str(), &garp_);
  if (result < 0) {
    ::close(fd);
    throw errno_error(env, -result, "opening the ARP socket on " + name);
  }
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    int error = errno;
    ::close(fd);
    ha::garp_close(&garp_);
    throw errno_error(env, error, "eventfd");
  }
  fd_ = fd;
  stop_fd_ = stop_fd;
  queue_ = std::make_shared<VrrpReaderQueue>();
  tsfn_ = Napi::ThreadSafeFunction::New(env, on_packets.As<Napi::Function>(), "fulcrum-vrrp", 0, 1);
  tsfn_live_ = true;
  reader_ = std::thread(read_loop, fd_, stop_fd_, queue_, tsfn_);
  cleanup_.add<VrrpSocketHandle, &VrrpSocketHandle::shutdown>(env, this);
}

VrrpSocketHandle::~VrrpSocketHandle() { shutdown(); }

void VrrpSocketHandle::shutdown() {
  if (reader_.joinable()) {
    uint64_t one = 1;
    // The reader polls stop_fd_; a failed write here would leave it running,
    // but an eventfd write of 1 fails only on counter overflow.
    if (write(stop_fd_, &one, sizeof one) < 0) perror("fulcrum: vrrp reader stop");
    reader_.join();
  }
  if (fd_ >= 0) ::close(fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  fd_ = stop_fd_ = -1;
  ha::garp_close(&garp_);
  if (tsfn_live_) {
    tsfn_.Release();
    tsfn_live_ = false;
  }
  cleanup_.remove();
}

void VrrpSocketHandle::read_loop(int fd, int stop_fd, std::shared_ptr<VrrpReaderQueue> queue, Napi::ThreadSafeFunction tsfn) {
  std::vector<uint8_t> buffer(kMaxDatagram);
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;  // EFAULT/EINVAL cannot happen with these arguments; stop reading rather than spin
    }
    if (fds[1].revents != 0) return;
    bool wake = false;
    // Drain what is readable; each datagram is copied to its own buffer.
    for (;;) {
      long length = ha::vrrp_socket_receive(fd, buffer.data(), buffer.size());
      if (length == -EINTR) continue;
      if (length < 0) break;  // EAGAIN: drained; other errors: poll again
      // A truncated copy keeps its real length visible: the extra bytes are
      // zero, and JS sees a packet longer than its IP header's total length.
      const size_t copied = static_cast<size_t>(length) < buffer.size() ? static_cast<size_t>(length) : buffer.size();
      std::lock_guard<std::mutex> lock(queue->mutex);
      if (queue->packets.size() >= kMaxQueued) {
        queue->dropped++;
        continue;
      }
      wake = wake || queue->packets.empty();
      queue->packets.emplace_back(buffer.begin(), buffer.begin() + static_cast<long>(copied));
      if (static_cast<size_t>(length) > copied) queue->packets.back().resize(static_cast<size_t>(length));
    }
    if (wake) {
      tsfn.NonBlockingCall([queue](Napi::Env env, Napi::Function callback) {
        if (env == nullptr || callback.IsEmpty()) return;
        std::vector<std::vector<uint8_t>> batch;
        uint64_t dropped;
        {
          std::lock_guard<std::mutex> lock(queue->mutex);
          batch.swap(queue->packets);
          dropped = queue->dropped;
          queue->dropped = 0;
        }
        Napi::Array array = Napi::Array::New(env, batch.size());
        for (uint32_t i = 0; i < batch.size(); i++) array.Set(i, Napi::Buffer<uint8_t>::Copy(env, batch[i].data(), batch[i].size()));
        callback.Call({array, Napi::Number::New(env, static_cast<double>(dropped))});
      });
    }
  }
}

Napi::Value VrrpSocketHandle::send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) throw errno_error(env, EBADF, "send on a closed VRRP socket");
  const uint32_t destination = parse_ipv4(env, info[0], "destination");
  const uint32_t source = parse_ipv4(env, info[1], "source");
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "payload must be a Buffer");
  Napi::Buffer<uint8_t> payload = info[2].As<Napi::Buffer<uint8_t>>();
  long sent = ha::vrrp_socket_send(fd_, destination, source, payload.Data(), payload.Length());
  if (sent < 0) throw errno_error(env, static_cast<int>(-sent), "sending a VRRP advertisement");
  return Napi::Number::New(env, static_cast<double>(sent));
}

Napi::Value VrrpSocketHandle::garp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t ip = parse_ipv4(env, info[0], "ip");
  int result = ha::garp_send(garp_, ip);
  if (result < 0) throw errno_error(env, -result, "sending a gratuitous ARP");
  return env.Undefined();
}

Napi::Value VrrpSocketHandle::set_address(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (garp_.ifindex <= 0) throw errno_error(env, EBADF, "setAddress on a closed VRRP socket");
  const bool add = info[0].ToBoolean().Value();
  const uint32_t ip = parse_ipv4(env, info[1], "ip");
  if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "prefixLength must be a number");
  const int64_t prefix = info[2].As<Napi::Number>().Int64Value();
  if (prefix < 1 || prefix > 32) throw Napi::RangeError::New(env, "prefixLength must be 1..32");
  return Napi::Number::New(env, ha::netlink_ipv4_address(add, garp_.ifindex, ip, static_cast<uint8_t>(prefix)));
}

Napi::Value VrrpSocketHandle::close(const Napi::CallbackInfo& info) {
  shutdown();
  return info.Env().Undefined();
}

Napi::Value VrrpSocketHandle::mac(const Napi::CallbackInfo& info) {
  char text[18];
  snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", garp_.mac[0], garp_.mac[1], garp_.mac[2], garp_.mac[3],
           garp_.mac[4], garp_.mac[5]);
  return Napi::String::New(info.Env(), text);
}

}  // namespace fulcrum::addon
