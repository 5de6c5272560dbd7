// Per-value steps of the privacy-risk-score histograms (Song & Mittal),
// shared by the CPU kernels (risk.cpp) and the CUDA kernels (cuda/risk.cu):
// no allocation, no exceptions, host and device.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define TFMIA_HOST_DEVICE __host__ __device__
#else
#define TFMIA_HOST_DEVICE
#endif

namespace tfmia::risk {

// np.histogram processes its input in blocks of this many values.
constexpr std::int64_t kBlock = 65536;

// The reference floors shadow values at 1e-10 for log-spaced bins
// (x[x <= 1e-10] = 1e-10, in the array's precision).
template <class T>
TFMIA_HOST_DEVICE inline T floored(T x, bool floor) {
    const T small = T(1e-10);
    return (floor && x <= small) ? small : x;
}

// Number of edges among e[0..count) that are <= v (edges non-decreasing).
// Branch-free: the loop runs a fixed number of times for a given count and
// the comparison only selects, so scattered values cost no mispredictions.
TFMIA_HOST_DEVICE inline int edges_at_or_below(double v, const double* e, int count) {
    int lower = 0, n = count;  // e[< lower] <= v, e[>= lower + n] > v
    while (n > 1) {
        const int half = n / 2;
        lower += (e[lower + half - 1] <= v) ? half : 0;
        n -= half;
    }
    return lower + ((n == 1 && e[lower] <= v) ? 1 : 0);
}

// Count table of one histogram: per block of kBlock values (in input order),
// bins + 2 counters.  Counter k <= bins holds the values with exactly k of
// the edges e_0..e_{bins-1} at or below them, so #{v < e_j} = counters 0..j
// summed (counter `bins` only absorbs the values at or above e_{bins-1});
// counter bins + 1 holds #{v <= e_bins} (the last edge is inclusive).
constexpr int slots_per_block(int bins) { return bins + 2; }

TFMIA_HOST_DEVICE inline int histogram_slot(double v, const double* e, int bins) {
    return edges_at_or_below(v, e, bins);
}

// The reference's find_index: v >= e_B -> B - 1, v <= e_0 -> 0, else the
// last i with e_i <= v.
TFMIA_HOST_DEVICE inline int find_bin(double v, const double* e, int bins) {
    if (v >= e[bins]) return bins - 1;
    if (v <= e[0]) return 0;
    return edges_at_or_below(v, e, bins + 1) - 1;
}

// r = h_in / (h_in + h_out * odds) with odds = (1 - prior) / prior; at odds 1
// (prior 0.5) exactly the reference's h_in / (h_in + h_out), whatever FMA
// contraction the compiler may do.  Device code rounds each step.  r = 0
// where h_in = 0 (the bin is non-empty: h_out > 0), also when h_out * odds
// underflows to 0.
TFMIA_HOST_DEVICE inline double member_ratio(double h_in, double h_out, double odds) {
    if (h_in == 0.0) return 0.0;
#ifdef __CUDA_ARCH__
    const double weighted = odds == 1.0 ? h_out : __dmul_rn(h_out, odds);
    return __ddiv_rn(h_in, __dadd_rn(h_in, weighted));
#else
    const double weighted = odds == 1.0 ? h_out : h_out * odds;
    return h_in / (h_in + weighted);
#endif
}

// The reference's score_calculate: the ratio in bin `bin` if it is
// non-empty, else in the nearest non-empty bin looking outward (bin - 1,
// bin + 1, bin - 2, ...); `no_evidence` when every bin is empty.
TFMIA_HOST_DEVICE inline double risk_score(const double* h_in, const double* h_out, int bins, int bin, double odds,
                                           double no_evidence) {
    if (h_in[bin] + h_out[bin] != 0.0) return member_ratio(h_in[bin], h_out[bin], odds);
    for (int t = 1; t < bins; ++t) {
        const int below = bin - t, above = bin + t;
        if (below >= 0 && h_in[below] + h_out[below] != 0.0) return member_ratio(h_in[below], h_out[below], odds);
        if (above < bins && h_in[above] + h_out[above] != 0.0) return member_ratio(h_in[above], h_out[above], odds);
    }
    return no_evidence;
}

}  // namespace tfmia::risk
