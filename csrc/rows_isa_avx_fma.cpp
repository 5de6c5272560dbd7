// The row kernels compiled for AVX + FMA without AVX2 (e.g. AMD Piledriver); see row_kernels.hpp.
#include "row_kernels.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("arch=x86-64-v2,avx,fma")
#define TFMIA_SIMD_WIDTH 4
#include "row_kernels_impl.hpp"

namespace tfmia {
namespace {
const RowKernels kTable = make_row_kernels("avx_fma");
}
const RowKernels* const kRowKernelsAvxFma = &kTable;
}  // namespace tfmia

#else
namespace tfmia {
const RowKernels* const kRowKernelsAvxFma = nullptr;
}  // namespace tfmia
#endif
