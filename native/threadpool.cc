#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace perceiver {
namespace {

int configured_threads() {
  const char* env = std::getenv("PERCEIVER_NUM_THREADS");
  if (env && *env) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (*end == '\0' && n >= 1 && n <= 1024) return (int)n;
    // As PERCEIVER_CPU_ISA: said once, not silently replaced by the default.
    std::fprintf(stderr, "perceiver-io: ignoring PERCEIVER_NUM_THREADS=%s (an integer from 1 to 1024)\n", env);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; i++) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void run(int chunks, const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> caller(call_mu_);
    Job job{&fn, chunks};
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    job.work();
    std::unique_lock<std::mutex> lock(mu_);
    // The job lives on this stack frame: wait until every worker has left it.
    done_cv_.wait(lock, [&] { return job.done.load() == chunks && job.active == 0; });
    job_ = nullptr;
  }

 private:
  struct Job {
    const std::function<void(int)>* fn;
    int chunks;
    std::atomic<int> next{0};
    std::atomic<int> done{0};
    int active = 0;  // workers inside work(), guarded by Pool::mu_
    void work() {
      for (int c; (c = next.fetch_add(1)) < chunks;) {
        (*fn)(c);
        done.fetch_add(1);
      }
    }
  };

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      // A sleeping thread takes ~100 us to wake, longer than many kernels, and
      // kernels come in bursts: poll briefly before blocking.
      for (int i = 0; i < kSpin && generation_.load(std::memory_order_acquire) == seen; i++) pause();
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        job = job_;
        if (!job) continue;
        job->active++;
      }
      job->work();
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->active--;
      }
      done_cv_.notify_all();
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  Job* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  static constexpr int kSpin = 20000;  // ~50-100 us of pause instructions
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  bool stop_ = false;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit
  // races with other static destructors.
  static Pool* p = new Pool(configured_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int chunks = (int)std::min<int64_t>(max_chunks, pool().size());
  if (chunks <= 1) {
    fn(0, n, 0);
    return;
  }
  pool().run(chunks, [&](int c) {
    int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
    fn(lo, hi, c);
  });
}

}  // namespace perceiver
