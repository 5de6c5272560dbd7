// Branch-free double-precision exp and log that vectorise, for the row kernels.
//
// libm's exp and log are scalar calls, so a row loop that uses them runs one
// element at a time.  These versions use only arithmetic, selects and integer
// operations on the IEEE-754 bits, written once as templates over the lane
// type D:
//   * D = double            scalar code, used by the CUDA kernels (every
//                           function is __host__ __device__ there);
//   * D = simd::vdouble     eight doubles in a GCC/Clang vector (simd.hpp),
//                           compiled once per instruction set (row_kernels.hpp).
// One source for every lane type keeps the CPU and CUDA paths on the same
// formulas; they differ only by FMA contraction and summation order.
//
// Accuracy, measured against numpy in tests/test_signals.py::test_vecmath_*:
// below 1 ulp for every function here.
//
//   exp(x)       Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, then the
//                degree-13 Taylor polynomial of e^r (truncation < 5e-18
//                relative), scaled by 2^k as two factors 2^k1 2^k2 so that
//                results in the subnormal range are rounded once.
//                Domain: every double; x < -746 gives 0, x > 709.78 gives +inf,
//                NaN gives NaN.
//   log(x)       x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)),
//                s = f / (2 + f),
//                log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2))
//                with the minimax coefficients of FreeBSD's e_log.c for R.
//                Domain: positive normal finite x; callers floor their
//                arguments (e.g. at 1e-30).  Other inputs give unspecified
//                values.
//   log1p(x)     log(1 + x) for finite x >= 0: for 1 + x < sqrt(2) the reduced
//                argument is f = x exactly, above it the rounding error of
//                1 + x is added back as (x - ((1 + x) - 1)) / (1 + x).
//   log1m(p, lo) log(max(1 - p, lo)) for p >= 0 and lo in [2^-1022, 1/2],
//                without cancellation: for p <= 1 - sqrt(1/2) the reduced
//                argument is f = -p exactly (k = 0); for p <= 1/2 it is
//                f = 1 - 2p, exact by Sterbenz (k = -1); above 1/2, 1 - p is
//                itself exact.  log1m_half(p) is the same for p <= 1/2 only.
//   log_and_log1m(x, p, lo)  log(x) and log1m(p, lo) sharing one division.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "hostdevice.hpp"

#if defined(__GNUC__) && !defined(__CUDACC__)
// Eight-double vectors (simd.hpp) returned from always-inline functions make
// GCC note that the AVX-512 calling convention differs; no call crosses an ABI
// boundary, so the note is noise.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace tfmia::vm {

// What the generic code needs to know about a lane type: its bit pattern
// type, the type of per-lane indices and comparison masks, and a few lane-wise
// operations.  simd.hpp specialises it for its vectors.
template <class D>
struct Lanes;

template <>
struct Lanes<double> {
    using Bits = std::uint64_t;
    using Index = std::int64_t;
    using Mask = bool;
    TFMIA_HD static Mask all_true() { return true; }
    TFMIA_HD static bool all(Mask m) { return m; }
    TFMIA_HD static double sqrt(const double& x) { return std::sqrt(x); }
    TFMIA_HD static Bits to_bits(const double& x) {
#if defined(__CUDA_ARCH__)
        return static_cast<Bits>(__double_as_longlong(x));
#else
        Bits u;
        std::memcpy(&u, &x, sizeof u);
        return u;
#endif
    }
    TFMIA_HD static double from_bits(const Bits& u) {
#if defined(__CUDA_ARCH__)
        return __longlong_as_double(static_cast<long long>(u));
#else
        double x;
        std::memcpy(&x, &u, sizeof x);
        return x;
#endif
    }
};

template <class D>
using IndexOf = typename Lanes<D>::Index;
template <class D>
using MaskOf = typename Lanes<D>::Mask;

// max(x, lo) and min(x, hi) against a constant; NaN in x propagates.  (The
// bound is taken by value so that device code may pass constexpr constants.)
template <class D>
TFMIA_HD D at_least(const D& x, double lo) {
    return x < lo ? lo : x;
}
template <class D>
TFMIA_HD D at_most(const D& x, double hi) {
    return x > hi ? hi : x;
}

// Lane-wise max(a, b); b where a is NaN.
template <class D>
TFMIA_HD D max(const D& a, const D& b) {
    return a > b ? a : b;
}

// |x|, clearing the sign bit.
template <class D>
TFMIA_HD D abs(const D& x) {
    using L = Lanes<D>;
    return L::from_bits(L::to_bits(x) & 0x7fffffffffffffffULL);
}

namespace detail {

constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000: low 21 bits zero
constexpr double kLn2Lo = 1.90821492927058770002e-10;  // ln 2 - kLn2Hi
constexpr double kInvLn2 = 1.44269504088896338700e+00;
// Adding 1.5 * 2^52 rounds a double of magnitude below 2^51 to an integer and
// leaves that integer, in two's complement, in the low mantissa bits.
constexpr double kShifter = 6755399441055744.0;
constexpr std::uint64_t kShifterBits = 0x4338000000000000ULL;
constexpr std::uint64_t kSqrtHalfBits = 0x3fe6a09e667f3bcdULL;
constexpr std::uint64_t kOneBits = 0x3ff0000000000000ULL;

// 2^k for integral k in [-1022, 1023], built in the exponent field.
template <class D>
TFMIA_HD D pow2i(const D& k) {
    using L = Lanes<D>;
    return L::from_bits((L::to_bits(k + kShifter) - kShifterBits + 1023ULL) << 52);
}

// Splits a positive normal x into x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)).
template <class D>
TFMIA_HD void reduce(const D& x, D& k, D& f) {
    using L = Lanes<D>;
    const auto ix = L::to_bits(x);
    // The exponent field of ix - bits(sqrt(1/2)) + bits(1) holds k + 1023.
    const auto biased = (ix - kSqrtHalfBits + kOneBits) >> 52;
    k = (L::from_bits(biased | kShifterBits) - kShifter) - 1023.0;
    f = L::from_bits(ix - ((biased - 1023ULL) << 52)) - 1.0;
}

// log(2^k (1 + f)) + lo for f in [sqrt(1/2) - 1, sqrt(2) - 1], given
// s = f / (2 + f), and a small correction lo; summed from the smallest term up
// (FreeBSD e_log.c).
template <class D>
TFMIA_HD D log_reduced(const D& k, const D& f, const D& s, const D& lo) {
    constexpr double Lg1 = 6.666666666666735130e-01;
    constexpr double Lg2 = 3.999999999940941908e-01;
    constexpr double Lg3 = 2.857142874366239149e-01;
    constexpr double Lg4 = 2.222219843214978396e-01;
    constexpr double Lg5 = 1.818357216161805012e-01;
    constexpr double Lg6 = 1.531383769920937332e-01;
    constexpr double Lg7 = 1.479819860511658591e-01;
    const D hfsq = 0.5 * f * f;
    const D z = s * s;
    const D w = z * z;
    const D t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    const D t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    return s * (hfsq + (t2 + t1)) + (k * kLn2Lo + lo) - hfsq + f + k * kLn2Hi;
}

template <class D>
TFMIA_HD D log_reduced(const D& k, const D& f, const D& lo) {
    return log_reduced(k, f, f / (2.0 + f), lo);
}

// The reduced argument (k, f) of log(max(1 - p, lo)) for p >= 0 (see log1m).
template <class D>
TFMIA_HD void reduce_one_minus(const D& p, double lo, D& k, D& f) {
    constexpr double kOneMinusSqrtHalf = 0.29289321881345247560;
    const auto small = p <= kOneMinusSqrtHalf;
    const auto half = p <= 0.5;
    k = small ? D{} : D{} - 1.0;
    f = small ? -p : 1.0 - 2.0 * p;
    if (Lanes<D>::all(half)) return;  // the usual case: skip the general reduction
    D k_general, f_general;
    reduce(at_least(1.0 - p, lo), k_general, f_general);  // 1 - p is exact for p >= 1/2
    k = half ? k : k_general;
    f = half ? f : f_general;
}

}  // namespace detail

// e^x; see the header comment for accuracy and domain.
template <class D>
TFMIA_HD D exp(const D& arg) {
    using namespace detail;
    const D x = at_most(at_least(arg, -746.0), 746.0);  // beyond: 0 and +inf, through the scaling
    const D k = (x * kInvLn2 + kShifter) - kShifter;  // nearest integer to x / ln 2
    const D r = (x - k * kLn2Hi) - k * kLn2Lo;
    // e^r = 1 + r + r^2 q(r), q holding the Taylor coefficients 1/n!, n = 2 .. 13.
    D q = r * 1.6059043836821613e-10 + 2.08767569878681e-09;
    q = q * r + 2.505210838544172e-08;
    q = q * r + 2.755731922398589e-07;
    q = q * r + 2.7557319223985893e-06;
    q = q * r + 2.48015873015873e-05;
    q = q * r + 0.0001984126984126984;
    q = q * r + 0.001388888888888889;
    q = q * r + 0.008333333333333333;
    q = q * r + 0.041666666666666664;
    q = q * r + 0.16666666666666666;
    q = q * r + 0.5;
    const D p = 1.0 + (r + r * r * q);
    // Scaling by a power of two is exact unless the result leaves the normal
    // range, so one factor 2^k gives the same result as two whenever it exists.
    if (Lanes<D>::all((k >= -1022.0) & (k <= 1023.0))) return p * pow2i(k);
    // 2^k = 2^k1 2^(k - k1), both halves in the normal range for |k| <= 1077.
    const D k1 = (k * 0.5 + kShifter) - kShifter;
    return p * pow2i(k1) * pow2i(k - k1);
}

// Natural log of a positive normal finite x; see the header comment.
template <class D>
TFMIA_HD D log(const D& x) {
    D k, f;
    detail::reduce(x, k, f);
    return detail::log_reduced(k, f, D{});
}

// log(1 + x) for finite x >= 0; see the header comment.
template <class D>
TFMIA_HD D log1p(const D& x) {
    constexpr double kSqrtTwoMinusOne = 0.41421356237309504880;
    const D u = 1.0 + x;
    D k, f;
    detail::reduce(u, k, f);
    const auto small = x < kSqrtTwoMinusOne;
    const D rounding = (x - (u - 1.0)) / u;  // u - 1 is exact for u >= 1
    return detail::log_reduced(small ? 0.0 : k, small ? x : f, small ? 0.0 : rounding);
}

// log(max(1 - p, lo)) for p >= 0, lo in [2^-1022, 1/2]; see the header comment.
template <class D>
TFMIA_HD D log1m(const D& p, double lo) {
    D k, f;
    detail::reduce_one_minus(p, lo, k, f);
    return detail::log_reduced(k, f, D{});
}

// log(1 - p) for p in [0, 1/2] only: log1m without the reduction of 1 - p.
template <class D>
TFMIA_HD D log1m_half(const D& p) {
    constexpr double kOneMinusSqrtHalf = 0.29289321881345247560;
    const auto small = p <= kOneMinusSqrtHalf;
    return detail::log_reduced(small ? D{} : D{} - 1.0, small ? -p : 1.0 - 2.0 * p, D{});
}

// log(x) and log(max(1 - p, lo)) at once (domains as for log and log1m), with
// one division for both: the s = f / (2 + f) of each comes from the shared
// reciprocal of (2 + f1)(2 + f2).  Costs at most a few tenths of an ulp.
template <class D>
TFMIA_HD void log_and_log1m(const D& x, const D& p, double lo, D& log_x, D& log1m_p) {
    D k1, f1, k2, f2;
    detail::reduce(x, k1, f1);
    detail::reduce_one_minus(p, lo, k2, f2);
    const D d1 = 2.0 + f1, d2 = 2.0 + f2;
    const D q = 1.0 / (d1 * d2);
    log_x = detail::log_reduced(k1, f1, f1 * d2 * q, D{});
    log1m_p = detail::log_reduced(k2, f2, f2 * d1 * q, D{});
}

}  // namespace tfmia::vm
