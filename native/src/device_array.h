// An owning array in a backend's memory, for the model's activations and its weight mirrors.
// resize() keeps the contents when the size is unchanged and gives a zeroed array otherwise
// (the same contract as the std::vector buffers it replaces).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include "backend.h"

namespace engine {

template <typename T>
class DeviceArray {
  static_assert(std::is_same<T, float>::value || std::is_same<T, int32_t>::value, "float or int32 only");

 public:
  DeviceArray() = default;
  DeviceArray(Backend* backend, int64_t n) { resize(backend, n); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept { swap(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceArray() { clear(); }

  void resize(Backend* backend, int64_t n) {
    if (n == size_ && backend == backend_) return;
    clear();
    backend_ = backend;
    if (n == 0) return;
    if constexpr (std::is_same<T, float>::value) data_ = backend_->alloc(n);
    else data_ = backend_->alloc_i32(n);
    size_ = n;
  }
  void clear() {
    if (data_) backend_->release(data_);
    data_ = nullptr;
    size_ = 0;
  }
  void swap(DeviceArray& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  Backend* backend_ = nullptr;
  T* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace engine
