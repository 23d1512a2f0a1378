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

}  // namespace

bool read_snapshot(Napi::Env env, Napi::Value value, std::vector<ServiceSpec>* out) {
  Reader reader(env);
  Napi::Object snapshot;
  Napi::Array services;
  if (!reader.object(value, "snapshot", &snapshot) || !reader.array(snapshot, "services", "snapshot", &services)) {
    return false;
  }
  for (uint32_t i = 0; i < services.Length(); i++) {
    const std::string where = "services[" + std::to_string(i) + "]";
    Napi::Object object;
    ServiceSpec spec;
    std::string balance;
    Napi::Array backends;
    if (!reader.object(services.Get(i), where, &object) ||
        !reader.integer(object, "slot", where, 0, kMaxServices - 1, &spec.slot) ||
        !reader.string(object, "name", where, &spec.name) ||
        !reader.address(object, "listenHost", "listenPort", where, &spec.listen) ||
        !reader.string(object, "balance", where, &balance) ||
        !reader.integer(object, "connectTimeoutMs", where, 1, 86400000, &spec.connect_timeout_ms) ||
        !reader.integer(object, "idleTimeoutMs", where, 1, 4294967295.0, &spec.idle_timeout_ms) ||
        !reader.integer(object, "retries", where, 0, 16, &spec.retries) ||
        !reader.array(object, "backends", where, &backends)) {
      return false;
    }
    if (balance == "roundrobin") {
      spec.balance = Balance::kRoundRobin;
    } else if (balance == "weighted") {
      spec.balance = Balance::kWeighted;
    } else {
      return reader.fail(where + ".balance: unknown algorithm \"" + balance + "\"");
    }
    for (uint32_t j = 0; j < backends.Length(); j++) {
      const std::string backend_where = where + ".backends[" + std::to_string(j) + "]";
      Napi::Object backend_object;
      BackendSpec backend;
      if (!reader.object(backends.Get(j), backend_where, &backend_object) ||
          !reader.integer(backend_object, "slot", backend_where, 0, kMaxBackends - 1, &backend.slot) ||
          !reader.address(backend_object, "host", "port", backend_where, &backend.address) ||
          !reader.integer(backend_object, "weight", backend_where, 1, 256, &backend.weight)) {
        return false;
      }
      spec.backends.push_back(backend);
    }
    out->push_back(std::move(spec));
  }
  return true;
}

}  // namespace fulcrum::addon
