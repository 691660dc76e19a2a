// A small crew of worker threads that stays awake between the back-to-back matmuls of a decode step.
//
// Why: one matmul of a step is short. Handing its parts to XLA's thread pool wakes a sleeping
// thread each time, and that wake-up cost the second core most of its share (bench/README.md,
// "Tuning notes of the CPU kernels").
// Helpers spin for a moment, then yield, then sleep on a condition variable, so an idle process
// (between jobs, or while the VQGAN runs) burns no CPU.
//
// A call that finds the crew busy (another thread's matmul) runs all of its parts itself.
#pragma once

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace minidalle {

class Crew {
 public:
  // The process-wide crew, created by the first call with that many threads in all (caller
  // included). It is never destroyed: helpers may still be parked when the process exits.
  static Crew& Get(int64_t thread_count) {
    static Crew* crew = new Crew(thread_count);
    return *crew;
  }

  int64_t thread_count() const { return helper_count_ + 1; }

  // Runs run_part(0 .. part_count-1), each exactly once, on the caller and the helpers; returns
  // when every part has finished.
  void Run(int64_t part_count, std::function<void(int64_t)> run_part) {
    auto task = std::make_shared<Task>();
    task->count = part_count;
    task->run_part = std::move(run_part);
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (busy.owns_lock() && helper_count_ > 0 && part_count > 1) {
      bool has_sleepers;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        task_ = task;
        generation_.fetch_add(1, std::memory_order_release);
        has_sleepers = sleepers_ > 0;
      }
      if (has_sleepers) wake_.notify_all();
    }
    task->Work();
    while (task->done.load(std::memory_order_acquire) < part_count) _mm_pause();
  }

 private:
  // One call's parts. Held by shared_ptr, so a helper that picks it up late finds no parts left
  // and touches nothing of a call that has returned.
  struct Task {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    int64_t count = 0;
    std::function<void(int64_t)> run_part;

    void Work() {
      for (int64_t part; (part = next.fetch_add(1, std::memory_order_relaxed)) < count;) {
        run_part(part);
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };

  // Between two kernel calls XLA runs small ops, some split over its own pool's threads. A
  // helper that spun the whole gap would hold the core those threads need (each such op then
  // waited for the OS to preempt it), so helpers spin only a moment, then yield the core at every
  // check, then sleep.
  static constexpr std::chrono::microseconds kSpinTime{2};
  static constexpr std::chrono::microseconds kYieldTime{2000};

  explicit Crew(int64_t thread_count) : helper_count_(thread_count > 1 ? thread_count - 1 : 0) {
    for (int64_t i = 0; i < helper_count_; ++i) std::thread([this] { HelperLoop(); }).detach();
  }

  void HelperLoop() {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      WaitForGeneration(seen);
      std::shared_ptr<Task> task;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        seen = generation_.load(std::memory_order_acquire);
        task = task_;
      }
      if (task) task->Work();
    }
  }

  void WaitForGeneration(uint64_t seen) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point started = Clock::now();
    while (Clock::now() - started < kSpinTime) {
      if (generation_.load(std::memory_order_acquire) != seen) return;
      _mm_pause();
    }
    while (Clock::now() - started < kYieldTime) {
      if (generation_.load(std::memory_order_acquire) != seen) return;
      std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ++sleepers_;
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    --sleepers_;
  }

  const int64_t helper_count_;
  std::mutex busy_;   // one call uses the crew at a time
  std::mutex mutex_;  // guards task_ and sleepers_; generation_ changes under it
  std::condition_variable wake_;
  std::shared_ptr<Task> task_;
  std::atomic<uint64_t> generation_{0};
  int64_t sleepers_ = 0;
};

}  // namespace minidalle
