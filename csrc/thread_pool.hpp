// A small persistent thread pool with one primitive, parallel_for.
//
// Read me first:
//  * Results never depend on the thread count: callers split work into tasks whose outputs are
//    disjoint, and each task does the same arithmetic whichever thread runs it.
//  * The calling thread runs tasks too, so parallel_for(n, 1, f) is a plain loop with no thread
//    hand-off, and the caller waits only for tasks that were claimed, never for an idle helper:
//    a parallel_for nested inside a task completes even when every worker is busy.
//  * The first exception thrown by a task is rethrown in the caller after all tasks ended.
//  * Callers release the GIL before calling in (see bindings.cpp); tasks never touch Python.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace jpegai {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs task(i) for i in [0, count) on at most `threads` threads (0 = all hardware threads).
  void parallel_for(size_t count, unsigned threads, const std::function<void(size_t)>& task);

  unsigned workers() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void worker_loop();
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> queue_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

// Number of hardware threads (at least 1).
unsigned hardware_threads();

// The process-wide pool, created on first use with hardware_threads() - 1 workers.
ThreadPool& global_pool();

}  // namespace jpegai
