#include "nvml.h"

#include <dlfcn.h>

#include <mutex>

namespace engine {

namespace {
// The NVML declarations we use, as documented in nvml.h (NVML_SUCCESS = 0).
using nvmlDevice = void*;
struct NvmlUtilization { unsigned int gpu, memory; };
struct NvmlMemory { unsigned long long total, free, used; };
constexpr int kTemperatureGpu = 0;

struct Nvml {
  bool loaded = false;
  std::string reason;
  int (*device_count)(unsigned int*) = nullptr;
  int (*handle_by_index)(unsigned int, nvmlDevice*) = nullptr;
  int (*name)(nvmlDevice, char*, unsigned int) = nullptr;
  int (*utilization)(nvmlDevice, NvmlUtilization*) = nullptr;
  int (*memory)(nvmlDevice, NvmlMemory*) = nullptr;
  int (*power)(nvmlDevice, unsigned int*) = nullptr;
  int (*temperature)(nvmlDevice, int, unsigned int*) = nullptr;
};

Nvml& nvml() {
  static Nvml lib;
  static std::once_flag once;
  std::call_once(once, [] {
    void* so = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!so) so = dlopen("libnvidia-ml.so", RTLD_NOW | RTLD_LOCAL);
    if (!so) { lib.reason = "NVML not found (libnvidia-ml.so.1: no NVIDIA driver on this machine)"; return; }
    auto init = (int (*)())dlsym(so, "nvmlInit_v2");
    lib.device_count = (int (*)(unsigned int*))dlsym(so, "nvmlDeviceGetCount_v2");
    lib.handle_by_index = (int (*)(unsigned int, nvmlDevice*))dlsym(so, "nvmlDeviceGetHandleByIndex_v2");
    lib.name = (int (*)(nvmlDevice, char*, unsigned int))dlsym(so, "nvmlDeviceGetName");
    lib.utilization = (int (*)(nvmlDevice, NvmlUtilization*))dlsym(so, "nvmlDeviceGetUtilizationRates");
    lib.memory = (int (*)(nvmlDevice, NvmlMemory*))dlsym(so, "nvmlDeviceGetMemoryInfo");
    lib.power = (int (*)(nvmlDevice, unsigned int*))dlsym(so, "nvmlDeviceGetPowerUsage");
    lib.temperature = (int (*)(nvmlDevice, int, unsigned int*))dlsym(so, "nvmlDeviceGetTemperature");
    if (!init || !lib.device_count || !lib.handle_by_index || !lib.utilization || !lib.memory) { lib.reason = "NVML is missing expected functions"; return; }
    const int rc = init();
    if (rc != 0) { lib.reason = "nvmlInit failed with code " + std::to_string(rc); return; }
    lib.loaded = true;
  });
  return lib;
}
}  // namespace

NvmlReading nvml_read() {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  NvmlReading out;
  Nvml& lib = nvml();
  if (!lib.loaded) { out.reason = lib.reason; return out; }
  unsigned int count = 0;
  if (lib.device_count(&count) != 0) { out.reason = "nvmlDeviceGetCount failed"; return out; }
  out.available = true;
  for (unsigned int i = 0; i < count; i++) {
    nvmlDevice dev = nullptr;
    if (lib.handle_by_index(i, &dev) != 0) continue;
    GpuSample s;
    s.index = (int)i;
    char name[96] = {0};
    if (lib.name && lib.name(dev, name, sizeof name) == 0) s.name = name;
    NvmlUtilization u{};
    if (lib.utilization(dev, &u) == 0) s.utilization = u.gpu;
    NvmlMemory m{};
    if (lib.memory(dev, &m) == 0) { s.memory_used_bytes = (double)m.used; s.memory_total_bytes = (double)m.total; }
    unsigned int mw = 0, temp = 0;
    if (lib.power && lib.power(dev, &mw) == 0) s.power_watts = mw / 1000.0;
    if (lib.temperature && lib.temperature(dev, kTemperatureGpu, &temp) == 0) s.temperature_c = temp;
    out.gpus.push_back(s);
  }
  return out;
}

}  // namespace engine
