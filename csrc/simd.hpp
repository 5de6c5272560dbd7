// SIMD lanes of doubles for the CPU row kernels (GCC/Clang vector extensions).
//
// The lane count is the native register width of the instruction set the
// including file compiles for, set by it as TFMIA_SIMD_WIDTH: 8 for AVX-512,
// 4 for AVX/AVX2, 2 for SSE2 and other baselines.  (GCC lowers wider vectors
// into several native ones, but then turns their masks into scalar code.)
// Code on vdouble must be compiled for the instruction set it runs on, which is
// why it lives in row_kernels_impl.hpp, included once per instruction set (see
// row_kernels.hpp): GCC fixes the shape of vector masks when it compiles a
// function, so a generic helper compiled for baseline x86-64 and inlined into
// an AVX-512 function (e.g. by target_clones) comes out partly scalar.
#pragma once

#if !defined(__GNUC__)
#error "tfmia's CPU row kernels need GCC or Clang vector extensions"
#endif
#if !defined(TFMIA_SIMD_WIDTH)
#error "define TFMIA_SIMD_WIDTH (doubles per vector register) before including simd.hpp"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "vecmath.hpp"

namespace tfmia::simd {

constexpr int kWidth = TFMIA_SIMD_WIDTH;
typedef double vdouble __attribute__((vector_size(kWidth * sizeof(double))));
typedef std::int64_t vint __attribute__((vector_size(kWidth * sizeof(std::int64_t))));
typedef std::uint64_t vbits __attribute__((vector_size(kWidth * sizeof(std::uint64_t))));
typedef float vfloat __attribute__((vector_size(kWidth * sizeof(float))));

// kWidth consecutive values (unaligned) as doubles.
TFMIA_HD vdouble load(const double* p) {
    vdouble v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
TFMIA_HD vdouble load(const float* p) {
    vfloat v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, vdouble);
}

TFMIA_HD void store(double* p, const vdouble& v) { std::memcpy(p, &v, sizeof v); }

// Every lane equal to j.
TFMIA_HD vint splat(std::int64_t j) { return vint{} + j; }

// Lanes j, j + 1, ..., j + kWidth - 1.
TFMIA_HD vint iota(std::int64_t j) {
    vint v;
    for (int i = 0; i < kWidth; ++i) v[i] = j + i;
    return v;
}

namespace detail {
// One butterfly stage of a transpose: pairs of rows (a, b), b = a + B, swap
// their off-diagonal blocks of B lanes.
template <int B>
TFMIA_HD void transpose_pair(vdouble& a, vdouble& b) {
    vint lo, hi;
    for (int k = 0; k < kWidth; ++k) {
        lo[k] = (k & B) ? kWidth + k - B : k;
        hi[k] = (k & B) ? kWidth + k : k + B;
    }
    const vdouble new_a = __builtin_shuffle(a, b, lo), new_b = __builtin_shuffle(a, b, hi);
    a = new_a;
    b = new_b;
}
template <int B>
TFMIA_HD void transpose_stages(vdouble* rows) {
    if constexpr (B < kWidth) {
        for (int i = 0; i < kWidth; ++i)
            if (!(i & B)) transpose_pair<B>(rows[i], rows[i + B]);
        transpose_stages<2 * B>(rows);
    }
}
}  // namespace detail

// Transposes the kWidth x kWidth matrix whose rows are rows[0 .. kWidth) in
// log2(kWidth) butterfly stages of lane shuffles.
TFMIA_HD void transpose(vdouble* rows) { detail::transpose_stages<1>(rows); }

TFMIA_HD bool any(const vint& mask) {
    std::int64_t a = 0;
    for (int i = 0; i < kWidth; ++i) a |= mask[i];
    return a != 0;
}

// Horizontal sum in lane order (deterministic).
TFMIA_HD double sum(const vdouble& v) {
    double s = v[0];
    for (int i = 1; i < kWidth; ++i) s += v[i];
    return s;
}

}  // namespace tfmia::simd

namespace tfmia::vm {
template <>
struct Lanes<simd::vdouble> {
    using Bits = simd::vbits;
    using Index = simd::vint;
    using Mask = simd::vint;  // all ones where true, as vector comparisons produce
    TFMIA_HD static Mask all_true() { return ~Mask{}; }
    TFMIA_HD static bool all(const Mask& m) { return !simd::any(~m); }
    TFMIA_HD static simd::vdouble sqrt(const simd::vdouble& x) {
        simd::vdouble r;
        for (int i = 0; i < simd::kWidth; ++i) r[i] = std::sqrt(x[i]);
        return r;
    }
    TFMIA_HD static Bits to_bits(const simd::vdouble& x) { return __builtin_bit_cast(Bits, x); }
    TFMIA_HD static simd::vdouble from_bits(const Bits& u) { return __builtin_bit_cast(simd::vdouble, u); }
};
}  // namespace tfmia::vm
