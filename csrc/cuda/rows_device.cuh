// Device-side plumbing shared by the CUDA row kernels (signals.cu,
// gradstats.cu, bisection.cu): error checks, an owning device buffer, row
// batching and warp reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tfmia::cuda {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Largest input a kernel copies to the device at once.
constexpr std::size_t kBatchBytes = std::size_t{256} << 20;

inline void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
        throw std::runtime_error(std::string("tfmia CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

// Throws if the last kernel launch failed.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Rows per batch when each row has row_bytes of input (at least one row).
inline std::int64_t rows_per_batch(std::int64_t n, std::size_t row_bytes) {
    const std::int64_t fit = static_cast<std::int64_t>(kBatchBytes / (row_bytes ? row_bytes : 1));
    return fit < 1 ? 1 : (fit < n ? fit : n);
}

inline unsigned blocks_for(std::int64_t threads, int block) {
    return static_cast<unsigned>((threads + block - 1) / block);
}

// An owning device array of `count` T; copies to and from host memory.
template <class T>
class DeviceBuffer {
public:
    explicit DeviceBuffer(std::size_t count) {
        if (count > 0) check(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)), "cudaMalloc");
    }
    ~DeviceBuffer() {
        if (ptr_ != nullptr) cudaFree(ptr_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    T* get() const { return ptr_; }
    void upload(const T* host, std::size_t count) {
        if (count > 0) check(cudaMemcpy(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    }
    void download(T* host, std::size_t count) const {
        if (count > 0) check(cudaMemcpy(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    }

private:
    T* ptr_ = nullptr;
};

// ---- warp reductions: every lane receives the result ----------------------------

__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
    return v;
}

__device__ __forceinline__ double warp_max(double v) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const double other = __shfl_xor_sync(kFullMask, v, offset);
        v = other > v ? other : v;
    }
    return v;
}

__device__ __forceinline__ bool warp_all(bool v) { return __all_sync(kFullMask, v) != 0; }

// Largest value and its smallest index over the warp.
__device__ __forceinline__ void warp_argmax(double& value, std::int64_t& index) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const double v = __shfl_xor_sync(kFullMask, value, offset);
        const long long i = __shfl_xor_sync(kFullMask, static_cast<long long>(index), offset);
        if (v > value || (v == value && i < index)) {
            value = v;
            index = i;
        }
    }
}

// Records the smallest bad index seen (first_bad starts at ~0ULL).
__device__ __forceinline__ void report_bad(unsigned long long* first_bad, std::int64_t index) {
    atomicMin(first_bad, static_cast<unsigned long long>(index));
}

inline std::int64_t first_bad_or_none(unsigned long long value) {
    return value == ~0ULL ? -1 : static_cast<std::int64_t>(value);
}

}  // namespace tfmia::cuda
