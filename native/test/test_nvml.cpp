#include "check.h"
#include "nvml.h"

// Without a driver the reading says why; with one, every GPU has a name and sane numbers.
TEST(nvml_read_reports_reason_or_devices) {
  engine::NvmlReading r = engine::nvml_read();
  if (!r.available) {
    EXPECT(!r.reason.empty());
    EXPECT(r.gpus.empty());
  } else {
    for (const auto& g : r.gpus) {
      EXPECT(g.utilization >= 0 && g.utilization <= 100);
      EXPECT(g.memory_total_bytes >= g.memory_used_bytes);
    }
  }
}
