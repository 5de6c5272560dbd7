// Mergeable summaries of a stretch of gradient values, for tfmia.gradstats.
//
// A Moments holds, for n values x: the mean, the central moment sums
// M_k = sum (x - mean)^k for k = 2, 3, 4, and sum |x|, sum x^2, min |x|, max |x|.
// The mean is kept as an unevaluated sum mean + mean_lo (double-double), so
// that the difference of two means, which the merge multiplies by large
// counts, stays exact even when the values spread over a few ulps of their
// mean (e.g. 1 + k 2^-52).
// Two summaries of disjoint stretches combine exactly (up to rounding) with the
// pairwise formulas of Chan, Golub & LeVeque (1979) and Pebay (2008), so a
// per-sample gradient can arrive in chunks of any sizes and be reduced block by
// block, thread by thread, without power sums (which cancel catastrophically
// for data far from zero) and without ever concatenating the chunks.
//
// Values of any magnitude: the sums are of y = x 2^-e, e (the summary's
// `exponent`) the binary exponent of the largest |x|, so that y^4 neither
// overflows nor underflows where x^4 would (|x| = 1e200 or 1e-200); scaling by
// a power of two is exact, so for ordinary values the numbers are those of the
// unscaled sums.  merge() brings two summaries to the larger exponent.  min |x|
// and max |x| are kept unscaled.
//
// Used by the CPU kernels (row_kernels_impl.hpp), the CUDA kernel and the
// Python-facing accumulator (gradstats.cpp); TFMIA_HD makes it device code too.
#pragma once

#include <cmath>

#include "hostdevice.hpp"

namespace tfmia::gradstats {

struct Moments {
    double n;         // number of values (exact below 2^53)
    double exponent;  // e: the fields from mean to l2sq are those of y = x 2^-e
    double mean, mean_lo, m2, m3, m4;
    double l1, l2sq, min_abs, max_abs;
};

// The exponent of an all-zero stretch: below every other, so merging it
// never rescales the other side.
constexpr int kZeroExponent = -2000;
// Exponents are clamped to where 2^-e is a double (2^1000 .. 2^-1023).
constexpr int kMinExponent = -1000, kMaxExponent = 1023;
// Stretches whose largest |x| lies within 2^+-kPlainRange can be summed
// unscaled first: their y^4 sums over 2^53 values stay far from overflow and
// underflow.
constexpr int kPlainRange = 200;

// The summary of nothing: the identity of merge().
TFMIA_HD Moments empty_moments() {
    return Moments{0.0, double(kZeroExponent), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, HUGE_VAL, 0.0};
}

// e for a stretch whose largest |x| is max_abs (finite).
TFMIA_HD int scale_exponent(double max_abs) {
    if (max_abs == 0.0) return kZeroExponent;
    const int e = ilogb(max_abs);
    return e < kMinExponent ? kMinExponent : (e > kMaxExponent ? kMaxExponent : e);
}

// The same summary with exponent e >= m.exponent: the k-th power fields
// scale by 2^(-k (e - m.exponent)) (exact, but for what underflows, which is
// negligible against the values of the stretch that set e).
TFMIA_HD Moments at_exponent(const Moments& m, double e) {
    if (e == m.exponent) return m;
    const int k = static_cast<int>(m.exponent - e);
    Moments r = m;
    r.exponent = e;
    r.mean = ldexp(m.mean, k);
    r.mean_lo = ldexp(m.mean_lo, k);
    r.l1 = ldexp(m.l1, k);
    r.m2 = ldexp(m.m2, 2 * k);
    r.l2sq = ldexp(m.l2sq, 2 * k);
    r.m3 = ldexp(m.m3, 3 * k);
    r.m4 = ldexp(m.m4, 4 * k);
    return r;
}

// hi + lo = a + b exactly, hi = fl(a + b) (Knuth's TwoSum).
TFMIA_HD void two_sum(double a, double b, double& hi, double& lo) {
    hi = a + b;
    const double bb = hi - a;
    lo = (a - (hi - bb)) + (b - bb);
}

// Summary of n values from a two-pass scan of y = x 2^-e around a
// provisional mean `shift`: sum_d = sum (y - shift) and s_k = sum (y - shift)^k,
// l1 and l2sq of y, min_abs and max_abs of x.  The correction
// c = sum_d / n recentres the sums exactly (binomial expansion), so a rounded
// shift costs nothing:
//   M2 = s2 - n c^2,  M3 = s3 - 3 c s2 + 2 n c^3,  M4 = s4 - 4 c s3 + 6 c^2 s2 - 3 n c^4.
TFMIA_HD Moments centred_moments(double n, int e, double shift, double sum_d, double s2, double s3, double s4,
                                 double l1, double l2sq, double min_abs, double max_abs) {
    const double c = sum_d / n;
    const double c2 = c * c;
    Moments m;
    m.n = n;
    m.exponent = e;
    two_sum(shift, c, m.mean, m.mean_lo);
    m.m2 = s2 - c * sum_d;
    m.m3 = s3 - 3.0 * c * s2 + 2.0 * n * c2 * c;
    m.m4 = s4 - 4.0 * c * s3 + 6.0 * c2 * s2 - 3.0 * n * c2 * c2;
    m.l1 = l1;
    m.l2sq = l2sq;
    m.min_abs = min_abs;
    m.max_abs = max_abs;
    return m;
}

// Summary of the union of two disjoint stretches (Pebay 2008, eqs. 2.1-2.4),
// both at the larger of their exponents, with delta = mean_b - mean_a (from
// the double-double means) and n = n_a + n_b:
//   mean = mean_a + delta n_b / n
//   M2 = M2a + M2b + delta^2 n_a n_b / n
//   M3 = M3a + M3b + delta^3 n_a n_b (n_a - n_b) / n^2 + 3 delta (n_a M2b - n_b M2a) / n
//   M4 = M4a + M4b + delta^4 n_a n_b (n_a^2 - n_a n_b + n_b^2) / n^3
//        + 6 delta^2 (n_a^2 M2b + n_b^2 M2a) / n^2 + 4 delta (n_a M3b - n_b M3a) / n
TFMIA_HD Moments merge(const Moments& a_in, const Moments& b_in) {
    if (b_in.n == 0.0) return a_in;
    if (a_in.n == 0.0) return b_in;
    const double e = a_in.exponent > b_in.exponent ? a_in.exponent : b_in.exponent;
    const Moments a = at_exponent(a_in, e), b = at_exponent(b_in, e);
    const double na = a.n, nb = b.n, n = na + nb;
    const double delta = (b.mean - a.mean) + (b.mean_lo - a.mean_lo);
    const double dn = delta / n;
    const double dn2 = dn * dn;
    const double nab = na * nb;
    Moments m;
    m.n = n;
    m.exponent = e;
    two_sum(a.mean, a.mean_lo + nb * dn, m.mean, m.mean_lo);
    m.m2 = a.m2 + b.m2 + delta * dn * nab;
    m.m3 = a.m3 + b.m3 + delta * dn2 * nab * (na - nb) + 3.0 * dn * (na * b.m2 - nb * a.m2);
    m.m4 = a.m4 + b.m4 + delta * dn2 * dn * nab * (na * na - nab + nb * nb) +
           6.0 * dn2 * (na * na * b.m2 + nb * nb * a.m2) + 4.0 * dn * (na * b.m3 - nb * a.m3);
    m.l1 = a.l1 + b.l1;
    m.l2sq = a.l2sq + b.l2sq;
    m.min_abs = b.min_abs < a.min_abs ? b.min_abs : a.min_abs;
    m.max_abs = b.max_abs > a.max_abs ? b.max_abs : a.max_abs;
    return m;
}

}  // namespace tfmia::gradstats
