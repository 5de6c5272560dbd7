// numpy's float64 summation, replicated so that sums match numpy bit for bit.
//
// np.add.reduce over a contiguous float64 array (np.sum, ndarray.sum) starts
// from the identity 0.0 and adds DOUBLE_pairwise_sum of the whole array
// (numpy/_core/src/umath/loops_utils.h.src):
//   n < 8      a plain loop from -0.0,
//   n <= 128   eight interleaved accumulators r[j] += a[i + j], combined as
//              ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the
//              n % 8 leftovers added one by one,
//   otherwise  split at n2 = n / 2 rounded down to a multiple of 8 and recurse.
// The test suite checks this against numpy on many lengths and against
// sklearn's roc_auc_score, which sums its trapezoids this way.
#pragma once

#include <cstddef>

namespace tfmia {

inline double numpy_pairwise_sum(const double* a, std::ptrdiff_t n) {
    if (n < 8) {
        double res = -0.0;
        for (std::ptrdiff_t i = 0; i < n; ++i) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; ++j) r[j] = a[j];
        std::ptrdiff_t i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; ++j) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    }
    std::ptrdiff_t n2 = n / 2;
    n2 -= n2 % 8;
    return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

// np.sum(a) for a contiguous float64 array a of length n.
inline double numpy_sum(const double* a, std::ptrdiff_t n) { return 0.0 + numpy_pairwise_sum(a, n); }

}  // namespace tfmia
