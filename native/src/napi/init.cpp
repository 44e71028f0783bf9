// The addon's only init: hands `exports` to every registered binding file.
#include "registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto fn : napi_registry::all()) fn(env, exports);
  return exports;
}

NODE_API_MODULE(sparse_engine, Init)
