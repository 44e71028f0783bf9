#include <atomic>
#include <vector>

#include "check.h"
#include "parallel.h"

TEST(parallel_for_covers_every_index_once) {
  std::vector<int> hits(1000, 0);
  engine::parallel_for(1000, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; i++) hits[i]++; });
  for (int h : hits) EXPECT(h == 1);
}

TEST(parallel_for_nested_runs_serially) {
  std::atomic<int> total{0};
  engine::parallel_for(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) engine::parallel_for(10, [&](int64_t b2, int64_t e2) { total += (int)(e2 - b2); });
  });
  EXPECT(total == 40);
}
