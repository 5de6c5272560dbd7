// The row kernels compiled for AVX2 + FMA (x86-64-v3); see row_kernels.hpp.
#include "row_kernels.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("arch=x86-64-v3")
#define TFMIA_SIMD_WIDTH 4
#include "row_kernels_impl.hpp"

namespace tfmia {
namespace {
const RowKernels kTable = make_row_kernels("avx2");
}
const RowKernels* const kRowKernelsAvx2 = &kTable;
}  // namespace tfmia

#else
namespace tfmia {
const RowKernels* const kRowKernelsAvx2 = nullptr;
}  // namespace tfmia
#endif
