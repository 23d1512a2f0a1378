#include "errors.h"

#include <cstdio>
#include <cstring>

namespace fulcrum::addon {

std::string errno_name(int error) {
  const char* name = strerrorname_np(error);
  if (name != nullptr) return name;
  char unknown[16];
  snprintf(unknown, sizeof unknown, "E%d", error);
  return unknown;
}

Napi::Error errno_error(Napi::Env env, int error, const std::string& context) {
  std::string message = context.empty() ? std::string(strerror(error)) : context + ": " + strerror(error);
  Napi::Error js_error = Napi::Error::New(env, message);
  js_error.Set("code", Napi::String::New(env, errno_name(error)));
  js_error.Set("errno", Napi::Number::New(env, error));
  return js_error;
}

Napi::Object options_argument(const Napi::CallbackInfo& info, const char* what) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an object");
  return info[0].As<Napi::Object>();
}

}  // namespace fulcrum::addon
