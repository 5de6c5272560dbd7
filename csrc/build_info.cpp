// What this build of the core can do: OpenMP threads and CUDA devices.
#include "common.hpp"
#include "registry.hpp"
#include "row_kernels.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/cuda_kernels.hpp"
#endif

namespace tfmia {

namespace {
py::dict build_info() {
    py::dict info;
#ifdef TFMIA_HAVE_OPENMP
    info["openmp"] = true;
#else
    info["openmp"] = false;
#endif
    info["threads"] = num_threads();
    info["row_isa"] = row_kernels().isa;
#ifdef TFMIA_HAVE_CUDA
    info["cuda_compiled"] = true;
    info["cuda_devices"] = cuda::device_count();
#else
    info["cuda_compiled"] = false;
    info["cuda_devices"] = 0;
#endif
    return info;
}
}  // namespace

void register_build_info(py::module_& m) {
    m.def("build_info", &build_info,
          "Dict describing this build: openmp (bool), threads (int), row_isa (instruction set of the "
          "CPU row kernels in use), cuda_compiled (bool), "
          "cuda_devices (number of usable CUDA devices, 0 without a driver or GPU).");
}

}  // namespace tfmia
