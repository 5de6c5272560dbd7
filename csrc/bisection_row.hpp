// One bisection step for one record, shared by the CPU kernel (bisection.cpp)
// and the CUDA kernel (cuda/bisection.cu).
//
// Rezaei & Liu's boundary distance: between lo (still predicted as the
// original class) and hi (predicted otherwise), query the midpoint; with
// gap = p_orig(mid) - max_{j != orig} p_j(mid):
//   |gap| < theta  converged: distance = ||mid - x0||_2, the record stops;
//   gap > 0        mid is still the original class: lo = mid;
//   otherwise      hi = mid;
// then mid = (lo + hi) / 2 (in double, rounded to the points' dtype).  A record
// that has used max_steps queries without converging stops as a failure.
#pragma once

#include <cmath>
#include <cstdint>

#include "hostdevice.hpp"

namespace tfmia::bisection {

enum Decision : std::int8_t { kToLo = 0, kToHi = 1, kConverged = 2, kBadProbs = 3, kBadClass = 4 };

// The per-record state (owned by Python) and the shape of one step.
struct Records {
    std::int64_t n, d;         // records, coordinates per record
    const std::int64_t* rows;  // the k queried records, increasing
    std::int64_t k, c;         // queried records, classes in their probabilities
    const std::int64_t* orig;  // original class per record
    bool* active;
    bool* converged;
    double* distance;
    std::int64_t* steps;
    double theta;
    std::int64_t max_steps;
};

// The (n, d) points of every record.
template <class T>
struct Points {
    const T* x0;
    T* lo;
    T* hi;
    T* mid;
};

constexpr double kMaxDouble = 1.7976931348623157e308;

// What to do with a record whose midpoint has class probabilities p[0 .. c).
template <class P>
TFMIA_HD Decision decide(const P* p, std::int64_t c, std::int64_t orig, double theta) {
    if (orig < 0 || orig >= c) return kBadClass;
    double other = -HUGE_VAL;
    bool finite = true;
    for (std::int64_t j = 0; j < c; ++j) {
        const double v = static_cast<double>(p[j]);
        finite = finite && std::fabs(v) <= kMaxDouble;
        if (j != orig && v > other) other = v;
    }
    if (!finite) return kBadProbs;
    const double gap = static_cast<double>(p[orig]) - other;
    if (std::fabs(gap) < theta) return kConverged;
    return gap > 0.0 ? kToLo : kToHi;
}

// The new midpoint of two points' coordinates, computed in double and rounded
// once to T: (a + b) / 2, or a / 2 + b / 2 where a + b overflows (double
// coordinates beyond 2^1023; float ones cannot).
template <class T>
TFMIA_HD T midpoint(T a, T b) {
    const double sum = static_cast<double>(a) + static_cast<double>(b);
    return static_cast<T>(fabs(sum) <= kMaxDouble ? sum * 0.5
                                                  : static_cast<double>(a) * 0.5 + static_cast<double>(b) * 0.5);
}

// ||a - b||_2 in units of the largest |a_j - b_j| (a power of two, exact
// scaling), so that no square overflows or underflows; +inf where a
// difference itself overflows (then so does the distance).
template <class T>
TFMIA_HD double scaled_distance(const T* a, const T* b, std::int64_t n) {
    double largest = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
        const double d = fabs(static_cast<double>(a[j]) - static_cast<double>(b[j]));
        largest = d > largest ? d : largest;
    }
    if (largest == 0.0 || !(largest <= kMaxDouble)) return largest;
    const int e = ilogb(largest);
    double sq = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
        const double y = ldexp(static_cast<double>(a[j]) - static_cast<double>(b[j]), -e);
        sq += y * y;
    }
    return ldexp(sqrt(sq), e);
}

// ||a - b||_2 from sq, the plain sum of (a_j - b_j)^2 in double: sqrt(sq)
// where sq lies safely within the double range, else scaled_distance (sq
// overflowed, or is so small that squares underflowed).  +inf only when the
// distance itself exceeds the double range.
template <class T>
TFMIA_HD double finish_distance(double sq, const T* a, const T* b, std::int64_t n) {
    if (sq <= kMaxDouble && sq >= 0x1p-900) return sqrt(sq);
    return scaled_distance(a, b, n);
}

}  // namespace tfmia::bisection
