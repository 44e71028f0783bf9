// GPU telemetry through NVML, loaded at run time (dlopen libnvidia-ml.so.1): a machine without
// the NVIDIA driver builds and runs unchanged, and `available` says why there is no reading.
#pragma once
#include <string>
#include <vector>

namespace engine {

struct GpuSample {
  int index = 0;
  std::string name;
  double utilization = 0;        // percent, 0-100 (kernel time share over NVML's sample period)
  double memory_used_bytes = 0;
  double memory_total_bytes = 0;
  double power_watts = -1;       // -1 when the device does not report it
  double temperature_c = -1;
};

struct NvmlReading {
  bool available = false;
  std::string reason;            // why not available
  std::vector<GpuSample> gpus;
};

// One reading of every GPU. Never throws; thread-safe.
NvmlReading nvml_read();

}  // namespace engine
