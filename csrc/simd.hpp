// Eight-double SIMD lanes for the CPU row kernels (GCC/Clang vector extensions).
//
// The row kernels accumulate in `vdouble` lanes and finish the row with a
// scalar tail and a fixed-order horizontal reduction, so results do not depend
// on the instruction set.  A 64-byte vector is one AVX-512 register; on AVX2 or
// SSE2 the compiler splits it into two or four registers.  Explicit vectors
// (rather than auto-vectorised loops) are used because GCC will not if-convert
// the selects of exp/log under the default -ftrapping-math, and `omp simd`
// reductions lose their vectorisation inside target clones.
//
// TFMIA_TARGET_CLONES compiles a function for AVX-512, AVX2+FMA, AVX+FMA and
// baseline x86-64 and picks one at load time (GCC function multiversioning), so
// a portable build still uses the wide units of the machine it runs on.
#pragma once

#if !defined(__GNUC__)
#error "tfmia's CPU row kernels need GCC or Clang vector extensions"
#endif

#include <cstdint>
#include <cstring>
#include <limits>

#include "vecmath.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TFMIA_TARGET_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "fma", "default")))
#else
#define TFMIA_TARGET_CLONES
#endif

namespace tfmia::simd {

constexpr int kWidth = 8;
typedef double vdouble __attribute__((vector_size(kWidth * sizeof(double))));
typedef std::int64_t vint __attribute__((vector_size(kWidth * sizeof(std::int64_t))));
typedef std::uint64_t vbits __attribute__((vector_size(kWidth * sizeof(std::uint64_t))));
typedef float vfloat __attribute__((vector_size(kWidth * sizeof(float))));

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMaxFinite = std::numeric_limits<double>::max();

TFMIA_HD vdouble splat(double v) { return v - vdouble{}; }

// Loads kWidth consecutive values (unaligned) as doubles.
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

// Column indices start, start + 1, ..., start + kWidth - 1.
TFMIA_HD vint iota(std::int64_t start) {
    const vint lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    return lanes + start;
}

// All-true mask where |v| is finite (false for NaN and +-Inf).
TFMIA_HD vint finite(const vdouble& v) {
    const vbits magnitude = __builtin_bit_cast(vbits, v) & 0x7fffffffffffffffULL;
    return __builtin_bit_cast(vdouble, magnitude) <= kMaxFinite;
}

// Horizontal reductions in lane order (deterministic).
TFMIA_HD double sum(const vdouble& v) {
    double s = v[0];
    for (int i = 1; i < kWidth; ++i) s += v[i];
    return s;
}
TFMIA_HD double min(const vdouble& v) {
    double m = v[0];
    for (int i = 1; i < kWidth; ++i) m = v[i] < m ? v[i] : m;
    return m;
}
TFMIA_HD double max(const vdouble& v) {
    double m = v[0];
    for (int i = 1; i < kWidth; ++i) m = v[i] > m ? v[i] : m;
    return m;
}
TFMIA_HD bool all(const vint& mask) {
    std::int64_t a = mask[0];
    for (int i = 1; i < kWidth; ++i) a &= mask[i];
    return a != 0;
}

// Largest value and its first column: per-lane (value, first index) pairs
// folded into (best, best_index), ties going to the smaller index.
TFMIA_HD void fold_argmax(const vdouble& value, const vint& index, double& best, std::int64_t& best_index) {
    for (int i = 0; i < kWidth; ++i) {
        if (value[i] > best || (value[i] == best && index[i] < best_index)) {
            best = value[i];
            best_index = index[i];
        }
    }
}

}  // namespace tfmia::simd

namespace tfmia::vm {
template <>
struct Lanes<simd::vdouble> {
    using Bits = simd::vbits;
    TFMIA_HD static Bits to_bits(const simd::vdouble& x) { return __builtin_bit_cast(Bits, x); }
    TFMIA_HD static simd::vdouble from_bits(const Bits& u) { return __builtin_bit_cast(simd::vdouble, u); }
};
}  // namespace tfmia::vm
