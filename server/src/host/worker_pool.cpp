// The worker pool for blocking handlers.
#include "host/worker_pool.hpp"

#include <pthread.h>

namespace trellis::host {

WorkerPool::WorkerPool(std::string name, int threads, std::size_t queue_limit) : queue_limit_(queue_limit) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
        threads_.emplace_back([this] { work(); });
        // Linux limits thread names to 15 characters.
        std::string thread_name = (name + "-" + std::to_string(i)).substr(0, 15);
        pthread_setname_np(threads_.back().native_handle(), thread_name.c_str());
    }
}

WorkerPool::~WorkerPool() { stop(); }

bool WorkerPool::submit(Job job) {
    {
        std::lock_guard lock(mutex_);
        // Jobs an idle worker is about to take do not count as waiting.
        if (stopping_ || jobs_.size() >= queue_limit_ + idle_) {
            ++rejected_;
            return false;
        }
        jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
}

void WorkerPool::work() {
    while (true) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            ++idle_;
            ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;  // stopping and nothing left
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();  // jobs never throw: the host's jobs catch everything themselves
    }
}

void WorkerPool::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && threads_.empty()) return;
        stopping_ = true;
    }
    ready_.notify_all();
    for (auto& thread : threads_)
        if (thread.joinable()) thread.join();
    threads_.clear();
}

std::size_t WorkerPool::queued() const {
    std::lock_guard lock(mutex_);
    return jobs_.size();
}

std::size_t WorkerPool::rejected() const {
    std::lock_guard lock(mutex_);
    return rejected_;
}

}  // namespace trellis::host
