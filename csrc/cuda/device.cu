// Device discovery for the optional CUDA path.
#include <cuda_runtime.h>

#include "cuda/cuda_kernels.hpp"

namespace tfmia::cuda {

int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error left by a missing driver
        return 0;
    }
    return count;
}

}  // namespace tfmia::cuda
