// Module entry: exports the Engine class, the counter layout (so the
// TypeScript side reads counters by offsets the native code defines instead of
// copies of them) and the snapshot's enums and bounds (so a test can hold them
// to the config schema).
#include <napi.h>

#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>

#include <cstring>
#include <string>
#include <vector>

#include "../engine/address.h"
#include "../engine/counters.h"
#include "../engine/kernel_relay.h"
#include "../engine/flow_hash.h"
#include "../ha/netlink_address.h"
#include "../engine/picker.h"
#include "bench_handles.h"
#include "connection_log_glue.h"
#include "engine_handle.h"
#include "fd_passing.h"
#include "ha_socket.h"
#include "sd_notify.h"
#include "snapshot_reader.h"

namespace fulcrum::addon {

namespace {

Napi::Object counter_layout(Napi::Env env) {
  // A line's fields: name -> word within the line (counters.h names them).
  auto fields = [&](const auto& names) {
    Napi::Object object = Napi::Object::New(env);
    for (const auto& entry : names) object.Set(std::string(entry.name), static_cast<uint32_t>(entry.value));
    return object;
  };
  // All offsets and strides are in u64 words.
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("version", kCounterLayoutVersion);
  layout.Set("globalOffset", 0);
  layout.Set("firstWorkerOffset", static_cast<double>(kLineWords));
  layout.Set("workerStride", static_cast<double>(kWorkerBlockWords));
  layout.Set("serviceOffset", static_cast<double>(kServiceOffsetWords));
  layout.Set("backendOffset", static_cast<double>(kBackendOffsetWords));
  layout.Set("slotStride", static_cast<double>(kLineWords));
  layout.Set("udpServiceOffset", static_cast<double>(kUdpServiceOffsetWords));
  layout.Set("udpBackendOffset", static_cast<double>(kUdpBackendOffsetWords));
  layout.Set("admissionOffset", static_cast<double>(kAdmissionOffsetWords));
  layout.Set("relayOffset", static_cast<double>(kRelayOffsetWords));
  layout.Set("maxServices", kMaxServices);
  layout.Set("maxBackends", kMaxBackends);
  layout.Set("global", fields(kGlobalCounterNames));
  layout.Set("worker", fields(kWorkerCounterNames));
  layout.Set("traffic", fields(kTrafficCounterNames));
  layout.Set("udp", fields(kUdpCounterNames));
  layout.Set("admission", fields(kAdmissionCounterNames));
  layout.Set("relay", fields(kRelayCounterNames));
  return layout;
}

// testing.maglevAssign(addresses, weights, tableSize, tuples): which backend
// (position in `addresses`) each 5-tuple gets under balance: maglev with
// hash_key five_tuple, all backends up. `tuples` holds 12-byte records:
// client IPv4, client port, local IPv4, local port, all in network order.
// A test hook: it runs the data path's own table and hash, no sockets.
Napi::Value maglev_assign(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray() || !info[2].IsNumber() || !info[3].IsBuffer()) {
    throw Napi::TypeError::New(env, "maglevAssign(addresses: string[], weights: number[], tableSize: number, tuples: Buffer)");
  }
  Napi::Array addresses = info[0].As<Napi::Array>();
  Napi::Array weights = info[1].As<Napi::Array>();
  if (addresses.Length() != weights.Length() || addresses.Length() == 0) {
    throw Napi::TypeError::New(env, "maglevAssign: one weight per address, at least one");
  }
  std::vector<PickerBackend> backends;
  for (uint32_t i = 0; i < addresses.Length(); i++) {
    const std::string text = addresses.Get(i).ToString().Utf8Value();
    const size_t colon = text.rfind(':');
    SocketAddress address;
    if (colon == std::string::npos || parse_socket_address(text.substr(0, colon), std::stoi(text.substr(colon + 1)), &address) < 0) {
      throw Napi::TypeError::New(env, "maglevAssign: \"" + text + "\" is not IPv4:port");
    }
    const uint32_t weight = weights.Get(i).ToNumber().Uint32Value();
    backends.push_back(PickerBackend{i, i, weight, hash_identity(address.storage), 0});
  }
  const uint32_t table_size = info[2].As<Napi::Number>().Uint32Value();
  Napi::Buffer<uint8_t> buffer = info[3].As<Napi::Buffer<uint8_t>>();
  std::vector<TestTuple> tuples(buffer.Length() / 12);
  for (size_t i = 0; i < tuples.size(); i++) {
    const uint8_t* record = buffer.Data() + i * 12;
    uint32_t ip;
    uint16_t port;
    std::memcpy(&ip, record, 4);
    std::memcpy(&port, record + 4, 2);
    tuples[i].client_ip = ip;
    tuples[i].client_port = ntohs(port);
    std::memcpy(&ip, record + 6, 4);
    std::memcpy(&port, record + 10, 2);
    tuples[i].local_ip = ip;
    tuples[i].local_port = ntohs(port);
  }
  const std::vector<uint32_t> assigned = maglev_assign_for_test(backends, table_size, tuples);
  Napi::Uint32Array out = Napi::Uint32Array::New(env, assigned.size());
  for (size_t i = 0; i < assigned.size(); i++) out[i] = assigned[i];
  return out;
}

// setInterfaceAddress(ifname, add, ip, prefixLength) -> 0 or -errno: an IPv4
// address added to or removed from an interface through rtnetlink (the
// announced VIPs go on `lo`, see src/announce/).
Napi::Value set_interface_address(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsBoolean() || !info[2].IsString() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "setInterfaceAddress(ifname: string, add: boolean, ip: string, prefixLength: number)");
  }
  const std::string ifname = info[0].As<Napi::String>().Utf8Value();
  const std::string ip_text = info[2].As<Napi::String>().Utf8Value();
  const uint32_t prefix = info[3].As<Napi::Number>().Uint32Value();
  in_addr ip{};
  if (inet_pton(AF_INET, ip_text.c_str(), &ip) != 1 || prefix < 1 || prefix > 32) {
    throw Napi::TypeError::New(env, "setInterfaceAddress: \"" + ip_text + "\" is not an IPv4 address, or prefix not 1..32");
  }
  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) return Napi::Number::New(env, -ENODEV);
  return Napi::Number::New(env, ha::netlink_ipv4_address(info[1].As<Napi::Boolean>().Value(), static_cast<int>(ifindex),
                                                         ip.s_addr, static_cast<uint8_t>(prefix)));
}

// kernelRelaySupport() -> { available, reason }: whether this process can use
// the kernel relay (probed once: maps created, program loaded and attached).
Napi::Value kernel_relay_support_value(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelRelaySupport& support = kernel_relay_support();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, support.available));
  out.Set("reason", Napi::String::New(env, support.reason));
  return out;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineHandle::define_class(env));
  exports.Set("VrrpSocket", VrrpSocketHandle::define_class(env));
  exports.Set("counterLayout", counter_layout(env));
  exports.Set("connectionStatsLayout", connection_stats_layout(env));
  exports.Set("snapshotSchema", snapshot_schema(env));
  exports.Set("setInterfaceAddress", Napi::Function::New(env, set_interface_address, "setInterfaceAddress"));
  exports.Set("kernelRelaySupport", Napi::Function::New(env, kernel_relay_support_value, "kernelRelaySupport"));
  exports.Set("sdNotify", Napi::Function::New(env, sd_notify, "sdNotify"));
  Napi::Object testing = Napi::Object::New(env);
  testing.Set("maglevAssign", Napi::Function::New(env, maglev_assign, "maglevAssign"));
  exports.Set("testing", testing);
  exports.Set("bench", bench_exports(env));
  exports.Set("fdPassing", fd_passing_exports(env));
  return exports;
}

}  // namespace fulcrum::addon

static Napi::Object init_fulcrum(Napi::Env env, Napi::Object exports) { return fulcrum::addon::init(env, exports); }

NODE_API_MODULE(fulcrum, init_fulcrum)
