#include "snapshot_reader.h"

#include <cmath>
#include <string>

namespace fulcrum::addon {

namespace {

class Reader {
 public:
  explicit Reader(Napi::Env env) : env_(env) {}

  bool fail(const std::string& what) {
    Napi::TypeError::New(env_, "engine snapshot: " + what).ThrowAsJavaScriptException();
    return false;
  }

  bool object(Napi::Value value, const std::string& where, Napi::Object* out) {
    if (!value.IsObject()) return fail(where + " must be an object");
    *out = value.As<Napi::Object>();
    return true;
  }

  bool array(Napi::Object from, const char* key, const std::string& where, Napi::Array* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsArray()) return fail(where + "." + key + " must be an array");
    *out = value.As<Napi::Array>();
    return true;
  }

  bool string(Napi::Object from, const char* key, const std::string& where, std::string* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsString()) return fail(where + "." + key + " must be a string");
    *out = value.As<Napi::String>().Utf8Value();
    return true;
  }

  bool integer(Napi::Object from, const char* key, const std::string& where, double min, double max, uint32_t* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsNumber()) return fail(where + "." + key + " must be a number");
    double number = value.As<Napi::Number>().DoubleValue();
    if (std::floor(number) != number || number < min || number > max) {
      return fail(where + "." + key + " must be an integer from " + std::to_string(static_cast<uint64_t>(min)) +
                  " to " + std::to_string(static_cast<uint64_t>(max)));
    }
    *out = static_cast<uint32_t>(number);
    return true;
  }

  bool boolean(Napi::Object from, const char* key, const std::string& where, bool* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsBoolean()) return fail(where + "." + key + " must be a boolean");
    *out = value.As<Napi::Boolean>().Value();
    return true;
  }

  // Looks `text` up in `names` (position = enum value).
  template <typename E, size_t N>
  bool choice(Napi::Object from, const char* key, const std::string& where, const char* const (&names)[N], E* out) {
    std::string text;
    if (!string(from, key, where, &text)) return false;
    for (size_t i = 0; i < N; i++) {
      if (text == names[i]) {
        *out = static_cast<E>(i);
        return true;
      }
    }
    return fail(where + "." + key + ": unknown value \"" + text + "\"");
  }

  // A list of CIDR prefixes added to *set (allow or deny).
  bool cidrs(Napi::Object from, const char* key, const std::string& where, bool allow, CidrSet* set) {
    Napi::Array list;
    if (!array(from, key, where, &list)) return false;
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value item = list.Get(i);
      if (!item.IsString() || set->add(item.As<Napi::String>().Utf8Value(), allow) < 0) {
        return fail(where + "." + key + "[" + std::to_string(i) + "] must be an IPv4 or IPv6 prefix (a.b.c.d/n, x::y/n)");
      }
    }
    return true;
  }

  bool address(Napi::Object from, const char* host_key, const char* port_key, const std::string& where,
               SocketAddress* out) {
    std::string host;
    uint32_t port;
    if (!string(from, host_key, where, &host) || !integer(from, port_key, where, 0, 65535, &port)) return false;
    if (parse_socket_address(host, static_cast<int>(port), out) < 0) {
      return fail(where + "." + host_key + " must be a numeric IP address, got \"" + host + "\"");
    }
    return true;
  }

 private:
  Napi::Env env_;
};

// In the order of the native enums (Balance, HashKey).
constexpr const char* kBalanceNames[] = {"roundrobin", "weighted", "leastconn", "random", "source",
                                         "maglev", "least_time", "least_bandwidth", "first"};
constexpr const char* kHashKeyNames[] = {"five_tuple", "source"};
constexpr const char* kProtocolNames[] = {"tcp", "udp"};
constexpr const char* kSendProxyNames[] = {"none", "v1", "v2"};

bool read_backend(Reader& reader, Napi::Value value, const std::string& where, BackendSpec* backend) {
  Napi::Object object;
  return reader.object(value, where, &object) &&
         reader.integer(object, "slot", where, 0, kMaxBackends - 1, &backend->slot) &&
         reader.address(object, "host", "port", where, &backend->address) &&
         reader.integer(object, "weight", where, 0, 256, &backend->weight) &&
         reader.boolean(object, "backup", where, &backend->backup) &&
         reader.integer(object, "maxConnections", where, 0, 1000000, &backend->max_connections) &&
         reader.integer(object, "slowStartMs", where, 0, 86400000, &backend->slow_start_ms) &&
         reader.choice(object, "sendProxy", where, kSendProxyNames, &backend->send_proxy);
}

// accept_proxy, allow/deny, client_limits, source: client.
bool read_admission(Reader& reader, Napi::Object object, const std::string& where, ServiceSpec* spec) {
  if (!reader.boolean(object, "acceptProxy", where, &spec->accept_proxy.enabled) ||
      !reader.integer(object, "acceptProxyTimeoutMs", where, 1, 3600000, &spec->accept_proxy.timeout_ms) ||
      !reader.boolean(object, "transparent", where, &spec->transparent)) {
    return false;
  }
  Napi::Value from = object.Get("acceptProxyFrom");
  if (!from.IsNull() && !from.IsUndefined()) {
    auto set = std::make_shared<CidrSet>();
    if (!reader.cidrs(object, "acceptProxyFrom", where, true, set.get())) return false;
    set->finish();
    spec->accept_proxy.from = std::move(set);
  }
  auto acl = std::make_shared<CidrSet>();
  if (!reader.cidrs(object, "allow", where, true, acl.get()) || !reader.cidrs(object, "deny", where, false, acl.get())) {
    return false;
  }
  acl->finish();
  if (!acl->empty()) spec->acl = std::move(acl);
  Napi::Value limits = object.Get("clientLimits");
  if (limits.IsNull() || limits.IsUndefined()) return true;
  Napi::Object limits_object;
  const std::string at = where + ".clientLimits";
  if (!reader.object(limits, at, &limits_object) ||
      !reader.integer(limits_object, "maxConnections", at, 0, 1000000, &spec->limits.max_connections) ||
      !reader.integer(limits_object, "rate", at, 0, 1000000, &spec->limits.rate) ||
      !reader.integer(limits_object, "burst", at, 0, 1000000, &spec->limits.burst) ||
      !reader.integer(limits_object, "tableSize", at, 16, 16777216, &spec->limits.table_size)) {
    return false;
  }
  if (spec->limits.rate > 0 && spec->limits.burst == 0) spec->limits.burst = spec->limits.rate;
  spec->limits.enabled = true;
  return true;
}

bool read_service(Reader& reader, Napi::Value value, const std::string& where, ServiceSpec* spec) {
  Napi::Object object;
  Napi::Array backends;
  Napi::Value sticky;
  if (!reader.object(value, where, &object) ||
      !reader.integer(object, "slot", where, 0, kMaxServices - 1, &spec->slot) ||
      !reader.string(object, "name", where, &spec->name) ||
      !reader.address(object, "listenHost", "listenPort", where, &spec->listen) ||
      !reader.choice(object, "balance", where, kBalanceNames, &spec->picker.balance) ||
      !reader.choice(object, "hashKey", where, kHashKeyNames, &spec->picker.hash_key) ||
      !reader.integer(object, "maglevTableSize", where, 3, 16777213, &spec->picker.maglev_table_size) ||
      !reader.integer(object, "connectTimeoutMs", where, 1, 86400000, &spec->connect_timeout_ms) ||
      !reader.integer(object, "idleTimeoutMs", where, 1, 4294967295.0, &spec->idle_timeout_ms) ||
      !reader.integer(object, "retries", where, 0, 16, &spec->retries) ||
      !reader.integer(object, "queueSize", where, 0, 1000000, &spec->queue.size) ||
      !reader.integer(object, "queueTimeoutMs", where, 1, 86400000, &spec->queue.timeout_ms) ||
      !reader.array(object, "backends", where, &backends)) {
    return false;
  }
  if (!reader.choice(object, "protocol", where, kProtocolNames, &spec->protocol) ||
      !reader.boolean(object, "freebind", where, &spec->freebind) ||
      !reader.integer(object, "maxFlows", where, 1, 16777216, &spec->udp.max_flows) ||
      !reader.integer(object, "udpResponses", where, 0, 1000000, &spec->udp.responses) ||
      !read_admission(reader, object, where, spec)) {
    return false;
  }
  // Optional (false when absent): share session state with peers.
  if (Napi::Value sync = object.Get("sync"); !sync.IsUndefined() && !reader.boolean(object, "sync", where, &spec->sync)) {
    return false;
  }
  sticky = object.Get("sticky");
  if (!sticky.IsNull() && !sticky.IsUndefined()) {
    Napi::Object sticky_object;
    uint32_t timeout_ms = 0;
    if (!reader.object(sticky, where + ".sticky", &sticky_object) ||
        !reader.integer(sticky_object, "size", where + ".sticky", 1, 16777216, &spec->sticky.size) ||
        !reader.integer(sticky_object, "timeoutMs", where + ".sticky", 1, 604800000, &timeout_ms)) {
      return false;
    }
    spec->sticky.enabled = true;
    spec->sticky.timeout_ms = timeout_ms;
  }
  for (uint32_t j = 0; j < backends.Length(); j++) {
    BackendSpec backend;
    if (!read_backend(reader, backends.Get(j), where + ".backends[" + std::to_string(j) + "]", &backend)) return false;
    spec->backends.push_back(backend);
  }
  return true;
}

}  // namespace

bool read_snapshot(Napi::Env env, Napi::Value value, std::vector<ServiceSpec>* out) {
  Reader reader(env);
  Napi::Object snapshot;
  Napi::Array services;
  if (!reader.object(value, "snapshot", &snapshot) || !reader.array(snapshot, "services", "snapshot", &services)) {
    return false;
  }
  for (uint32_t i = 0; i < services.Length(); i++) {
    ServiceSpec spec;
    if (!read_service(reader, services.Get(i), "services[" + std::to_string(i) + "]", &spec)) return false;
    out->push_back(std::move(spec));
  }
  return true;
}

}  // namespace fulcrum::addon
