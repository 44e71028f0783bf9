// A small persistent thread pool with a static, deterministic partition: parallel_for(n, fn)
// always gives thread t the same contiguous range [t*n/T, (t+1)*n/T), so reductions done per
// range and combined in range order are bit-identical run to run for a fixed thread count.
// Nested calls run serially in the calling thread (no oversubscription, no deadlock).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace engine {

class ThreadPool {
 public:
  static ThreadPool& get() { static ThreadPool pool; return pool; }

  int threads() const { return (int)workers_.size() + 1; }

  // Changes the worker count (>= 1). Not to be called while a parallel_for runs.
  void set_threads(int n);

  // Calls fn(begin, end) over contiguous chunks of [0, n), one chunk per thread.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  ~ThreadPool();

 private:
  ThreadPool();
  void start(int n);
  void stop();
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  // Written under mutex_; atomic so that a thread can spin on them briefly before it sleeps
  // (a training step dispatches hundreds of jobs back to back, and waking a sleeping thread costs
  // tens of microseconds, on a virtual machine most of all).
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool quit_ = false;
  std::mutex run_mutex_;  // one parallel_for at a time
};

inline void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  ThreadPool::get().parallel_for(n, fn);
}

}  // namespace engine
