#include "snapshot_reader.h"

#include <cmath>
#include <optional>
#include <string>

#include "snapshot_fields.h"

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

  // An integer from min to max (the caller's uint32 range).
  bool integer(Napi::Object from, const char* key, const std::string& where, double min, double max, uint32_t* out) {
    return integer_in(from, key, where, min, max, false, out);
  }

  bool integer(Napi::Object from, const IntegerField& field, const std::string& where, uint32_t* out) {
    return integer_in(from, field.key, where, field.min, field.max, field.zero_is_off, out);
  }

  bool boolean(Napi::Object from, const char* key, const std::string& where, bool* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsBoolean()) return fail(where + "." + key + " must be a boolean");
    *out = value.As<Napi::Boolean>().Value();
    return true;
  }

  // Looks the string at `key` up in the enum's name table.
  template <typename E, size_t N>
  bool choice(Napi::Object from, const char* key, const std::string& where, const EnumName<E> (&names)[N], E* out) {
    std::string text;
    if (!string(from, key, where, &text)) return false;
    if (const std::optional<E> value = enum_from_name(names, text)) {
      *out = *value;
      return true;
    }
    return fail(where + "." + key + ": unknown value \"" + text + "\"");
  }

  // The object at `key`, or false in *present when it is null (the feature is off).
  bool optional_object(Napi::Object from, const char* key, const std::string& where, bool* present, Napi::Object* out) {
    Napi::Value value = from.Get(key);
    *present = !value.IsNull();
    return !*present || object(value, where + "." + key, out);
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
  bool integer_in(Napi::Object from, const char* key, const std::string& where, double min, double max,
                  bool zero_is_off, uint32_t* out) {
    Napi::Value value = from.Get(key);
    if (!value.IsNumber()) return fail(where + "." + key + " must be a number");
    double number = value.As<Napi::Number>().DoubleValue();
    const bool off = zero_is_off && number == 0;
    if (std::floor(number) != number || (!off && (number < min || number > max))) {
      return fail(where + "." + key + " must be an integer from " + std::to_string(static_cast<uint64_t>(min)) +
                  " to " + std::to_string(static_cast<uint64_t>(max)) + (zero_is_off ? ", or 0 for none" : ""));
    }
    *out = static_cast<uint32_t>(number);
    return true;
  }

  Napi::Env env_;
};

bool read_backend(Reader& reader, Napi::Value value, const std::string& where, BackendSpec* backend) {
  Napi::Object object;
  return reader.object(value, where, &object) &&
         reader.integer(object, "slot", where, 0, kMaxBackends - 1, &backend->slot) &&
         reader.address(object, "host", "port", where, &backend->address) &&
         reader.integer(object, kWeight, where, &backend->weight) &&
         reader.boolean(object, "backup", where, &backend->backup) &&
         reader.integer(object, kMaxConnections, where, &backend->max_connections) &&
         reader.integer(object, kSlowStart, where, &backend->slow_start_ms) &&
         reader.choice(object, "sendProxy", where, kSendProxyNames, &backend->send_proxy);
}

// accept_proxy, allow/deny, client_limits, source: client.
bool read_admission(Reader& reader, Napi::Object object, const std::string& where, ServiceSpec* spec) {
  Napi::Object accept_proxy;
  if (!reader.optional_object(object, "acceptProxy", where, &spec->accept_proxy.enabled, &accept_proxy) ||
      !reader.boolean(object, "transparent", where, &spec->transparent)) {
    return false;
  }
  if (spec->accept_proxy.enabled) {
    const std::string at = where + ".acceptProxy";
    if (!reader.integer(accept_proxy, kAcceptProxyTimeout, at, &spec->accept_proxy.timeout_ms)) return false;
    // null: every peer must send a header.
    if (!accept_proxy.Get("from").IsNull()) {
      auto set = std::make_shared<CidrSet>();
      if (!reader.cidrs(accept_proxy, "from", at, true, set.get())) return false;
      set->finish();
      spec->accept_proxy.from = std::move(set);
    }
  }
  auto acl = std::make_shared<CidrSet>();
  if (!reader.cidrs(object, "allow", where, true, acl.get()) || !reader.cidrs(object, "deny", where, false, acl.get())) {
    return false;
  }
  acl->finish();
  if (!acl->empty()) spec->acl = std::move(acl);
  Napi::Object limits;
  if (!reader.optional_object(object, "clientLimits", where, &spec->limits.enabled, &limits)) return false;
  if (!spec->limits.enabled) return true;
  const std::string at = where + ".clientLimits";
  if (!reader.integer(limits, kLimitConnections, at, &spec->limits.max_connections) ||
      !reader.integer(limits, kLimitRate, at, &spec->limits.rate) ||
      !reader.integer(limits, kLimitBurst, at, &spec->limits.burst) ||
      !reader.integer(limits, kLimitTableSize, at, &spec->limits.table_size)) {
    return false;
  }
  // The config defaults burst to the rate; an empty bucket would refuse every client.
  if (spec->limits.rate > 0 && spec->limits.burst == 0) return reader.fail(at + ".burst must be at least 1 with a rate");
  return true;
}

bool read_service(Reader& reader, Napi::Value value, const std::string& where, ServiceSpec* spec) {
  Napi::Object object;
  Napi::Array backends;
  if (!reader.object(value, where, &object) ||
      !reader.integer(object, "slot", where, 0, kMaxServices - 1, &spec->slot) ||
      !reader.string(object, "name", where, &spec->name) ||
      !reader.address(object, "listenHost", "listenPort", where, &spec->listen) ||
      !reader.choice(object, "balance", where, kBalanceNames, &spec->picker.balance) ||
      !reader.choice(object, "hashKey", where, kHashKeyNames, &spec->picker.hash_key) ||
      !reader.integer(object, kMaglevTableSize, where, &spec->picker.maglev_table_size) ||
      !reader.integer(object, kConnectTimeout, where, &spec->connect_timeout_ms) ||
      !reader.integer(object, kIdleTimeout, where, &spec->idle_timeout_ms) ||
      !reader.integer(object, kRetries, where, &spec->retries) ||
      !reader.integer(object, kQueueSize, where, &spec->queue.size) ||
      !reader.integer(object, kQueueTimeout, where, &spec->queue.timeout_ms) ||
      !reader.array(object, "backends", where, &backends)) {
    return false;
  }
  if (!reader.choice(object, "protocol", where, kProtocolNames, &spec->protocol) ||
      !reader.boolean(object, "freebind", where, &spec->freebind) ||
      !reader.boolean(object, "ipv6Only", where, &spec->ipv6_only) ||
      !reader.integer(object, kMaxFlows, where, &spec->udp.max_flows) ||
      !reader.integer(object, kUdpResponses, where, &spec->udp.responses) ||
      !reader.choice(object, "datapath", where, kUdpDatapathNames, &spec->udp.datapath) ||
      !reader.integer(object, kNatPortFirst, where, &spec->udp.nat_port_first) ||
      !reader.integer(object, kNatPortCount, where, &spec->udp.nat_port_count) ||
      !read_admission(reader, object, where, spec) ||
      !reader.boolean(object, "sync", where, &spec->sync) ||
      !reader.boolean(object, "pgCancel", where, &spec->pg_cancel) ||
      !reader.choice(object, "relay", where, kRelayModeNames, &spec->relay)) {
    return false;
  }
  // A UDP flow must end when idle: 0 (no idle timeout) is TCP's alone.
  if (spec->protocol == Protocol::kUdp && spec->idle_timeout_ms == 0) {
    return reader.fail(where + ".idleTimeoutMs must be at least 1 for protocol udp");
  }
  Napi::Object keepalive;
  if (!reader.optional_object(object, "tcpKeepalive", where, &spec->tcp_keepalive.enabled, &keepalive)) return false;
  if (spec->tcp_keepalive.enabled) {
    const std::string at = where + ".tcpKeepalive";
    if (!reader.integer(keepalive, kKeepaliveIdle, at, &spec->tcp_keepalive.idle_ms) ||
        !reader.integer(keepalive, kKeepaliveInterval, at, &spec->tcp_keepalive.interval_ms) ||
        !reader.integer(keepalive, kKeepaliveCount, at, &spec->tcp_keepalive.count)) {
      return false;
    }
  }
  Napi::Object sticky;
  if (!reader.optional_object(object, "sticky", where, &spec->sticky.enabled, &sticky)) return false;
  if (spec->sticky.enabled) {
    uint32_t timeout_ms = 0;
    if (!reader.integer(sticky, kStickySize, where + ".sticky", &spec->sticky.size) ||
        !reader.integer(sticky, kStickyTimeout, where + ".sticky", &timeout_ms)) {
      return false;
    }
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

Napi::Object snapshot_schema(Napi::Env env) {
  auto names = [&](const auto& table) {
    Napi::Array array = Napi::Array::New(env);
    for (const auto& entry : table) array.Set(array.Length(), std::string(entry.name));
    return array;
  };
  Napi::Object enums = Napi::Object::New(env);
  enums.Set("balance", names(kBalanceNames));
  enums.Set("hashKey", names(kHashKeyNames));
  enums.Set("datapath", names(kUdpDatapathNames));
  enums.Set("protocol", names(kProtocolNames));
  enums.Set("sendProxy", names(kSendProxyNames));
  Napi::Object bounds = Napi::Object::New(env);
  for (const IntegerField* field : kIntegerFields) {
    if (!bounds.Has(field->scope)) bounds.Set(field->scope, Napi::Object::New(env));
    Napi::Object bound = Napi::Object::New(env);
    bound.Set("min", field->min);
    bound.Set("max", field->max);
    bound.Set("zeroIsOff", field->zero_is_off);
    bounds.Get(field->scope).As<Napi::Object>().Set(field->key, bound);
  }
  Napi::Object schema = Napi::Object::New(env);
  schema.Set("enums", enums);
  schema.Set("bounds", bounds);
  return schema;
}

}  // namespace fulcrum::addon
