// Turning the engine's -errno results into JS errors. No C++ exception
// crosses into JS: the glue throws a JS Error whose `code` is the errno name.
#pragma once

#include <napi.h>

#include <string>

namespace fulcrum::addon {

// An Error with .code = "EADDRINUSE" (etc.), .errno = the positive number, and
// a message "<context>: <strerror>".
Napi::Error errno_error(Napi::Env env, int error, const std::string& context);

// errno's symbolic name ("ECONNREFUSED"), or "E<number>" when unknown.
std::string errno_name(int error);

// The options object a constructor takes as its first argument; throws a
// TypeError "<what> must be an object" when it is something else.
Napi::Object options_argument(const Napi::CallbackInfo& info, const char* what);

}  // namespace fulcrum::addon
