// A bounded pool of threads for handlers that may block: a fixed number of workers and a
// queue of bounded length. submit() never blocks: when the queue is full it refuses, and the
// caller answers 503 without touching a worker.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trellis::host {

class WorkerPool {
public:
    using Job = std::function<void()>;

    // `threads` workers named "NAME-N"; at most `queue_limit` jobs wait for one.
    WorkerPool(std::string name, int threads, std::size_t queue_limit);
    ~WorkerPool();  // stop()
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // False when the queue is full or the pool is stopping; the job is not run then.
    bool submit(Job job);

    // Runs every queued job, then joins the workers. Idempotent.
    void stop();

    std::size_t queued() const;
    std::size_t rejected() const;

private:
    void work();

    std::size_t queue_limit_;
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Job> jobs_;
    std::size_t rejected_ = 0;
    std::size_t idle_ = 0;  // workers waiting for a job
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace trellis::host
