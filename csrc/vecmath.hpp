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
// Accuracy, measured against numpy's long double in
// tests/test_signals.py::test_vecmath_* and scripts/vecmath_ulps.py: below
// 0.65 ulp for every function here (figures below).
//
//   exp(x)       Cody-Waite reduction x = k ln2 + r + r_lo, |r| <= ln2/2,
//                with ln 2 = ln2_hi + ln2_lo (below) and r_lo the rounding
//                error of r; then the degree-13 Taylor polynomial of e^r
//                (truncation < 5e-18 relative) as (1 + r) + (r_lo (1 + r) +
//                r^2 q(r)), the rounding error of 1 + r recovered exactly
//                (Fast2Sum) before the final sum; scaled by 2^k as two
//                factors 2^k1 2^k2 so that results in the subnormal range are
//                rounded once.
//                Measured over 10^7 arguments in [-708, 709]
//                (scripts/vecmath_ulps.py): at most 0.62 ulp where the
//                compiler contracts to FMA (AVX-512, AVX2, AVX+FMA kernels),
//                0.65 ulp without (baseline).
//                Domain: every double; x < -746 gives 0, x > 709.78 gives +inf,
//                NaN gives NaN.
//   log(x)       x = 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)), read off
//                the bits exactly, and log x = k ln2 + log(1 + f).  With
//                t = 2f / (2 + f), so that 1 + f = (2 + t) / (2 - t),
//                    log(1 + f) = 2 atanh(t / 2) = t + t w q(w),   w = t^2,
//                where |t| <= 2 (3 - 2 sqrt 2) = 0.343 and q is the degree-6
//                minimax polynomial of (2 atanh(sqrt(w) / 2) - sqrt w) / w^1.5
//                on w in [0, 0.1178], fitted by scripts/fit_log_coefficients.py
//                (relative error it adds to log(1 + f): below 2^-59).
//                The leading term t carries almost all of the result, so the
//                rounding errors of t = f / (1 + f/2) are not left in it: t
//                gets the correction
//                    t_lo = 2f / (2 + f) - t = ((f - t) - t f / 2) (1 - t / 2),
//                using 2 / (2 + f) = 1 - t/2.  f - t is exact (t / f is within
//                [0.8, 1.2], Sterbenz) and t f / 2 is rounded once, which
//                leaves t + t_lo within about |t| u / 2 of 2f / (2 + f)
//                (u = 2^-53) whatever few-ulp error t had.  Then
//                    log x = (k ln2_hi + t) + (k ln2_lo + t_lo (1 + w/4) + t w q(w)),
//                with ln 2 = ln2_hi + ln2_lo split so that k ln2_hi is exact
//                (1 + w/4 is the derivative of 2 atanh(t / 2) to first order);
//                the rounding error of the first sum is recovered exactly
//                (Fast2Sum: |k ln2_hi| >= |t| unless k = 0) and added to the
//                small terms before the one final rounding.  For tiny f,
//                t = f exactly and the result is f, subnormal f included.
//                Measured over 10^7 arguments (scripts/vecmath_ulps.py), for
//                log and every function below: at most 0.53 ulp where the
//                compiler contracts to FMA (t f / 2 is then exact), 0.64 ulp
//                without (baseline kernels).
//                Domain: positive normal finite x; callers floor their
//                arguments (e.g. at 1e-30).  Other inputs give unspecified
//                values.
//   log1p(x)     log(1 + x) for finite x >= 0: for 1 + x < sqrt(2) the reduced
//                argument is f = x exactly, above it the rounding error c of
//                u = fl(1 + x) is added back as log(u + c) ~ log(u) + c / u.
//   log1m(p, lo) log(max(1 - p, lo)) for p >= 0 and lo in [2^-1022, 1/2],
//                without cancellation: for p <= 1 - sqrt(1/2) the reduced
//                argument is f = -p exactly (k = 0); for p <= 1/2 it is
//                f = 1 - 2p, exact by Sterbenz (k = -1); above 1/2, 1 - p is
//                itself exact.  log1m_half(p) is the same for p <= 1/2 only.
//   log_and_log1m(x, p, lo)  log(x) and log1m(p, lo) sharing one division;
//   log_pair(x1, x2)         log(x1) and log(x2) sharing one division.  The
//                correction t_lo above absorbs the extra rounding of the
//                shared reciprocal, so both are as accurate as log.
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

// ln 2 = kLn2Hi + kLn2Lo, kLn2Hi rounded to 42 significant bits so that
// k kLn2Hi is exact for |k| < 2^11 (scripts/fit_log_coefficients.py).
constexpr double kLn2Hi = 0x1.62e42fefa3800p-1;
constexpr double kLn2Lo = 0x1.ef35793c76730p-45;
constexpr double kInvLn2 = 0x1.71547652b82fep+0;  // 1 / ln 2 rounded
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

// q(w) of the header comment: 2 atanh(t / 2) = t + t w q(w), w = t^2 <= 0.1178
// (minimax coefficients from scripts/fit_log_coefficients.py --degree 6).
template <class D>
TFMIA_HD D log_tail_poly(const D& w) {
    D q = w * 0x1.2f02e5a544490p-18 + 0x1.39a1fb9d87929p-16;
    q = q * w + 0x1.74663c5376b0ap-14;
    q = q * w + 0x1.c71c52164ca8bp-12;
    q = q * w + 0x1.24924941e0c27p-9;
    q = q * w + 0x1.999999997fee9p-7;
    q = q * w + 0x1.5555555555592p-4;
    return q;
}

// log(2^k (1 + f)) + lo for f in [sqrt(1/2) - 1, sqrt(2) - 1], integral k and a
// small correction lo, given t within a few ulps of 2f / (2 + f); see the
// header comment for the derivation.
template <class D>
TFMIA_HD D log_reduced(const D& k, const D& f, const D& t, const D& lo) {
    const D t_lo = ((f - t) - 0.5 * t * f) * (1.0 - 0.5 * t);  // 2f / (2 + f) - t
    const D w = t * t;
    const D small = k * kLn2Lo + lo + (t_lo * (1.0 + 0.25 * w) + t * w * log_tail_poly(w));
    const D k_hi = k * kLn2Hi;  // exact
    const D head = k_hi + t;
    const D head_error = (k_hi - head) + t;  // exact (Fast2Sum)
    return head + (head_error + small);
}

template <class D>
TFMIA_HD D log_reduced(const D& k, const D& f, const D& lo) {
    return log_reduced(k, f, f / (1.0 + 0.5 * f), lo);
}

// The reduced argument (k, f) of log(1 - p) for p in [0, 1/2], from p exactly.
template <class D>
TFMIA_HD void reduce_one_minus_half(const D& p, D& k, D& f) {
    constexpr double kOneMinusSqrtHalf = 0.29289321881345247560;
    const auto small = p <= kOneMinusSqrtHalf;
    k = small ? D{} : D{} - 1.0;
    f = small ? -p : 1.0 - 2.0 * p;
}

// The reduced argument (k, f) of log(max(1 - p, lo)) for p >= 0 (see log1m).
template <class D>
TFMIA_HD void reduce_one_minus(const D& p, double lo, D& k, D& f) {
    reduce_one_minus_half(p, k, f);
    const auto half = p <= 0.5;
    if (Lanes<D>::all(half)) return;  // the usual case: skip the general reduction
    D k_general, f_general;
    reduce(at_least(1.0 - p, lo), k_general, f_general);  // 1 - p is exact for p >= 1/2
    k = half ? k : k_general;
    f = half ? f : f_general;
}

// log_reduced for two reduced arguments with one division: the t of each comes
// from the shared reciprocal of (1 + f1/2)(1 + f2/2), within a few ulps, which
// log_reduced's correction absorbs.
template <class D>
TFMIA_HD void log_reduced_pair(const D& k1, const D& f1, const D& k2, const D& f2, D& log1, D& log2) {
    const D d1 = 1.0 + 0.5 * f1, d2 = 1.0 + 0.5 * f2;
    const D r = 1.0 / (d1 * d2);
    log1 = log_reduced(k1, f1, f1 * d2 * r, D{});
    log2 = log_reduced(k2, f2, f2 * d1 * r, D{});
}

}  // namespace detail

// e^x; see the header comment for accuracy and domain.
template <class D>
TFMIA_HD D exp(const D& arg) {
    using namespace detail;
    const D x = at_most(at_least(arg, -746.0), 746.0);  // beyond: 0 and +inf, through the scaling
    const D k = (x * kInvLn2 + kShifter) - kShifter;  // nearest integer to x / ln 2
    const D a = x - k * kLn2Hi;        // exact (Sterbenz)
    const D r = a - k * kLn2Lo;
    const D r_lo = (a - r) - k * kLn2Lo;  // x - k ln2 = r + r_lo to within u |k ln2_lo|
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
    // e^(r + r_lo) = e^r (1 + r_lo) = 1 + r + (r_lo (1 + r) + r^2 q), summed with the
    // rounding error of 1 + r recovered exactly (Fast2Sum, |r| < 1).
    const D head = 1.0 + r;
    const D head_error = (1.0 - head) + r;
    const D p = head + (head_error + (r_lo + r * r_lo + r * r * q));
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
    D k, f;
    detail::reduce_one_minus_half(p, k, f);
    return detail::log_reduced(k, f, D{});
}

// log(x) and log(max(1 - p, lo)) at once (domains as for log and log1m).
template <class D>
TFMIA_HD void log_and_log1m(const D& x, const D& p, double lo, D& log_x, D& log1m_p) {
    D k1, f1, k2, f2;
    detail::reduce(x, k1, f1);
    detail::reduce_one_minus(p, lo, k2, f2);
    detail::log_reduced_pair(k1, f1, k2, f2, log_x, log1m_p);
}

// log(x1) and log(x2) at once, both positive normal finite.
template <class D>
TFMIA_HD void log_pair(const D& x1, const D& x2, D& log_x1, D& log_x2) {
    D k1, f1, k2, f2;
    detail::reduce(x1, k1, f1);
    detail::reduce(x2, k2, f2);
    detail::log_reduced_pair(k1, f1, k2, f2, log_x1, log_x2);
}

}  // namespace tfmia::vm
