#include "thread_pool.hpp"

#include <atomic>
#include <exception>
#include <memory>

namespace jpegai {

unsigned hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

ThreadPool::ThreadPool(unsigned workers) {
  threads_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

namespace {
// Shared by the caller and the helpers of one parallel_for call.
struct ForState {
  std::atomic<size_t> next{0};
  size_t count = 0;
  const std::function<void(size_t)>* task = nullptr;
  std::mutex mutex;
  std::condition_variable done;
  size_t finished = 0;  // tasks claimed and ended (or abandoned after an error)
  std::exception_ptr error;

  // Claims tasks until none are left.  A helper that starts late finds none and leaves at once, so
  // the caller never waits for a helper that a busy pool has not started yet.
  void run() {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      std::exception_ptr failure;
      try {
        (*task)(i);
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      size_t ended = 1;
      if (failure) {
        if (!error) error = failure;
        const size_t claimed = next.exchange(count);  // abandon the tasks nobody claimed yet
        if (claimed < count) ended += count - claimed;
      }
      finished += ended;
      if (finished == count) done.notify_all();
    }
  }
};
}  // namespace

void ThreadPool::parallel_for(size_t count, unsigned threads, const std::function<void(size_t)>& task) {
  if (count == 0) return;
  if (threads == 0) threads = hardware_threads();
  size_t helpers = std::min<size_t>({size_t(threads) - 1, count - 1, threads_.size()});
  if (helpers == 0) {
    for (size_t i = 0; i < count; ++i) task(i);
    return;
  }
  auto state = std::make_shared<ForState>();
  state->count = count;
  state->task = &task;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t h = 0; h < helpers; ++h) {
      queue_.emplace_back([state] { state->run(); });
    }
  }
  wake_.notify_all();
  state->run();
  std::unique_lock<std::mutex> lock(state->mutex);
  state->done.wait(lock, [&] { return state->finished == state->count; });
  if (state->error) std::rethrow_exception(state->error);
}

ThreadPool& global_pool() {
  static ThreadPool pool(hardware_threads() > 1 ? hardware_threads() - 1 : 0);
  return pool;
}

}  // namespace jpegai
