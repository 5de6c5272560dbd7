// Host-callable entry points of the optional CUDA kernels.  Every function
// takes host pointers, copies to the device, runs, and copies results back;
// errors are thrown as std::runtime_error with the CUDA error string.
#pragma once

namespace tfmia::cuda {

// Number of usable CUDA devices; 0 when no driver or no GPU is present.
int device_count();

}  // namespace tfmia::cuda
