// What this build of the core can do (OpenMP threads, the instruction sets of
// the CPU row kernels, CUDA devices), and the choice of row kernels: the
// TFMIA_ROW_ISA environment variable, applied when the module is loaded, and
// the _row_isa switch for tests.
#include <optional>
#include <string>

#include <pybind11/stl.h>

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
    info["row_isas"] = supported_row_isas();
#ifdef TFMIA_HAVE_CUDA
    info["cuda_compiled"] = true;
    info["cuda_devices"] = cuda::device_count();
#else
    info["cuda_compiled"] = false;
    info["cuda_devices"] = 0;
#endif
    return info;
}

std::string row_isa(std::optional<std::string> isa) {
    if (isa) use_row_kernels(*isa);
    return row_kernels().isa;
}
}  // namespace

void register_build_info(py::module_& m) {
    // An unknown or unsupported TFMIA_ROW_ISA fails the import, with a message naming it.
    use_row_kernels_from_environment();
    m.def("build_info", &build_info,
          "Dict describing this build: openmp (bool), threads (int), row_isa (instruction set of the "
          "CPU row kernels in use: 'avx512', 'avx2', 'avx_fma' or 'baseline'; TFMIA_ROW_ISA forces one), "
          "row_isas (those this CPU runs, widest first), cuda_compiled (bool), "
          "cuda_devices (number of usable CUDA devices, 0 without a driver or GPU).");
    m.def("_row_isa", &row_isa, py::arg("isa") = py::none(),
          "The instruction set of the CPU row kernels in use; passing one switches to it (for tests), "
          "ValueError if this CPU or build lacks it.");
}

}  // namespace tfmia
