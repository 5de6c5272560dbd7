// The row kernels compiled for AVX-512 F/BW/DQ/VL (x86-64-v4); see row_kernels.hpp.
#include "row_kernels.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("arch=x86-64-v4")
#define TFMIA_SIMD_WIDTH 8
#include "row_kernels_impl.hpp"

namespace tfmia {
namespace {
const RowKernels kTable = make_row_kernels("avx512");
}
const RowKernels* const kRowKernelsAvx512 = &kTable;
}  // namespace tfmia

#else
namespace tfmia {
const RowKernels* const kRowKernelsAvx512 = nullptr;
}  // namespace tfmia
#endif
