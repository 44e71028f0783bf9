#include <atomic>
#include <chrono>
#include <thread>
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

// Jobs back to back (workers still spinning for the next one) and after pauses longer than the
// spin (workers asleep on the condition variable): every job runs every index once, for several
// thread counts.
TEST(parallel_for_back_to_back_and_after_the_workers_sleep) {
  const int saved = engine::ThreadPool::get().threads();
  for (int threads : {2, 3}) {
    engine::ThreadPool::get().set_threads(threads);
    int64_t total = 0;
    std::vector<int64_t> per_chunk(7);
    for (int job = 0; job < 3000; job++) {
      if (job % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      engine::parallel_for(7, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) per_chunk[i] = i + job;
      });
      for (int64_t i = 0; i < 7; i++) total += per_chunk[i] - job;
    }
    EXPECT(total == 3000 * 21);
  }
  engine::ThreadPool::get().set_threads(saved);
}
