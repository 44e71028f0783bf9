#include "parallel.h"

#include <chrono>
#include <cstdlib>

namespace engine {

namespace {
thread_local bool inside_pool_task = false;

// How long a thread spins waiting for the next job (a worker) or for the workers to finish (the
// caller) before it blocks on the condition variable.
constexpr auto kSpin = std::chrono::microseconds(50);

// Spins until done() or kSpin passes; returns done().
template <typename Done>
bool spin_until(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; i++) {
    if (done()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return done();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

int default_threads() {
  if (const char* env = std::getenv("SPARSE_STUDIO_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : (int)hw;
}
}  // namespace

ThreadPool::ThreadPool() { start(default_threads()); }

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int n) {
  quit_ = false;
  for (int i = 1; i < n; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::set_threads(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> run(run_mutex_);
  if (n == threads()) return;
  stop();
  start(n);
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      // A worker started by set_threads() after earlier jobs wakes on their generation: nothing to run.
      if (!job_) { seen = generation_; continue; }
      seen = generation_;
      job = job_;
      n = job_n_;
    }
    const int64_t t = threads();
    const int64_t begin = n * index / t, end = n * (index + 1) / t;
    inside_pool_task = true;
    if (begin < end) (*job)(begin, end);
    inside_pool_task = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (inside_pool_task || workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> run(run_mutex_);
  const int64_t t = threads();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    pending_ = (int)workers_.size();
    generation_++;
  }
  wake_.notify_all();
  inside_pool_task = true;
  const int64_t end = n / t;
  if (end > 0) fn(0, end);
  inside_pool_task = false;
  spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

}  // namespace engine
