#include "gradflow/model/recurrent_cache.hpp"

#include <exception>

namespace gradflow {

std::shared_ptr<const RecurrentBase> RecurrentCache::get(const RecurrentKey& key,
                                                         const std::function<RecurrentBase()>& build) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key == key) {
      entries_.splice(entries_.begin(), entries_, it);
      ++hits_;
      const Future value = it->value;
      lock.unlock();  // wait outside the lock: the builder needs it to publish, other keys must not block
      return value.get();
    }
  }
  ++builds_;
  std::promise<std::shared_ptr<const RecurrentBase>> promise;
  entries_.push_front({key, promise.get_future().share()});
  while (entries_.size() > capacity_) entries_.pop_back();
  lock.unlock();
  try {
    auto value = std::make_shared<const RecurrentBase>(build());
    promise.set_value(value);
    return value;
  } catch (...) {
    promise.set_exception(std::current_exception());
    lock.lock();
    entries_.remove_if([&](const Entry& e) { return e.key == key; });
    throw;
  }
}

std::size_t RecurrentCache::builds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return builds_;
}

std::size_t RecurrentCache::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}

}  // namespace gradflow
