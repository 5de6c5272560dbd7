// TFMIA_HD: force-inlined functions that compile for the host and, under nvcc,
// for the device too.  Shared by the CPU row kernels and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define TFMIA_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define TFMIA_HD inline __attribute__((always_inline))
#else
#define TFMIA_HD inline
#endif
