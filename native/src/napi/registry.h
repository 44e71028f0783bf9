// Each native/src/napi/*.cpp file registers its functions here with a static
// `napi_registry::Add`; init.cpp calls them all. Adding an op family never edits init.cpp.
#pragma once
#include <napi.h>
#include <vector>

namespace napi_registry {
using RegisterFn = void (*)(Napi::Env env, Napi::Object exports);
inline std::vector<RegisterFn>& all() { static std::vector<RegisterFn> fns; return fns; }
struct Add { explicit Add(RegisterFn fn) { all().push_back(fn); } };
}  // namespace napi_registry
