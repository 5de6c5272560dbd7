// Streaming per-sample gradient statistics (tfmia.gradstats), Python binding.
//
// The Python accumulator owns an (n, 10) float64 state, one row per sample:
//   e, mean, mean_lo (the mean as a double-double), M2, M3, M4 (central moment
//   sums), sum |g|, sum g^2 (these seven of y = g 2^-e, see moments.hpp),
//   min |g|, max |g|,
// and the element count, which is the same for every row.  update() folds one
// (n, p) chunk into it; finalize() turns it into the seven statistics.
//
// update() cuts every row of the chunk into the same fixed segments
// (independent of the thread count, so results are reproducible), summarises
// each (row, segment) in parallel with the vectorised kernel of
// row_kernels_impl.hpp or the CUDA kernel, then merges each row's segments in
// order into its state with the pairwise formulas of moments.hpp.  NaN/Inf is
// found in the same pass and reported before the state is touched, so a failed
// update leaves the accumulator as it was.  Extra memory: 80 bytes per
// (row, segment), at most 64 segments per row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "moments.hpp"
#include "registry.hpp"
#include "row_kernels.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/rows.hpp"
#endif

namespace tfmia {

namespace {

using gradstats::Moments;

constexpr py::ssize_t kStateColumns = 10;  // e, mean, mean_lo, M2, M3, M4, l1, l2sq, min_abs, max_abs
constexpr std::int64_t kSegment = 16384;  // elements per segment, at least
constexpr std::int64_t kMaxSegments = 64;
// Element counts are carried as doubles: exact up to 2^53.
constexpr std::int64_t kMaxCount = std::int64_t(1) << 53;

// Segments per row for p elements: enough to keep every thread busy when there
// are few rows, never so many that the partial summaries add up.
std::int64_t segments_for(std::int64_t p) { return std::min(kMaxSegments, (p + kSegment - 1) / kSegment); }

Moments state_row(const double* s, std::int64_t count) {
    return Moments{static_cast<double>(count), s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9]};
}

void store_state_row(double* s, const Moments& m) {
    const double values[kStateColumns] = {m.exponent, m.mean, m.mean_lo, m.m2,      m.m3,
                                          m.m4,       m.l1,   m.l2sq,    m.min_abs, m.max_abs};
    std::copy(values, values + kStateColumns, s);
}

// Summaries of every (row, segment) of the chunk on the CPU; returns the first
// row holding NaN/Inf, or -1.
template <class T>
std::int64_t segment_moments_cpu(const T* chunk, std::int64_t n, std::int64_t p, std::int64_t segments,
                                 Moments* partials) {
    const RowKernels& kernels = row_kernels();
    auto moments = [&kernels]() {
        if constexpr (std::is_same_v<T, float>)
            return kernels.moments_f32;
        else
            return kernels.moments_f64;
    }();
    const std::int64_t seg_len = (p + segments - 1) / segments;
    const std::int64_t items = n * segments;
    std::int64_t first_bad = n;
    // Below ~1M elements (about a millisecond of work) a thread team is not worth waking.
#pragma omp parallel for schedule(dynamic, 16) reduction(min : first_bad) if (n * p >= (1 << 20))
    for (std::int64_t item = 0; item < items; ++item) {
        const std::int64_t row = item / segments, start = (item % segments) * seg_len;
        const std::int64_t len = std::min(seg_len, p - start);
        if (!moments(chunk + row * p + start, len, partials[item])) first_bad = std::min(first_bad, row);
    }
    return first_bad < n ? first_bad : -1;
}

template <class T>
void update(py::array state, std::int64_t count, const py::array& chunk, bool use_cuda) {
    const std::int64_t n = chunk.shape(0), p = chunk.shape(1);
    const T* data = static_cast<const T*>(chunk.data());
    double* s = static_cast<double*>(state.mutable_data());
    const std::int64_t segments = segments_for(p);
    std::vector<Moments> partials(static_cast<std::size_t>(n * segments));
    std::int64_t first_bad;
    {
        py::gil_scoped_release release;
        if (use_cuda) {
#ifdef TFMIA_HAVE_CUDA
            first_bad = cuda::segment_moments(data, n, p, segments, partials.data());
#else
            fail("device='cuda' is not available: tfmia was built without CUDA (rebuild with TFMIA_CUDA=ON)");
#endif
        } else {
            first_bad = segment_moments_cpu(data, n, p, segments, partials.data());
        }
        if (first_bad < 0) {
#pragma omp parallel for schedule(static) if (n * segments >= (1 << 15))
            for (std::int64_t row = 0; row < n; ++row) {
                const Moments* part = partials.data() + row * segments;
                Moments chunk_row = part[0];
                for (std::int64_t k = 1; k < segments; ++k) chunk_row = gradstats::merge(chunk_row, part[k]);
                double* srow = s + row * kStateColumns;
                store_state_row(srow, gradstats::merge(state_row(srow, count), chunk_row));
            }
        }
    }
    if (first_bad >= 0) fail("chunk contains NaN or Inf (first in row " + std::to_string(first_bad) + ")");
}

// Whether a state row summarising count >= 1 values can be one update() wrote:
// finite fields, 0 <= min |g| <= max |g| = M, the exponent e that M sets
// (merging keeps the larger, which is that of the larger maximum), and the
// sums within their bounds for count values of magnitude at most M (B = M 2^-e
// in the row's units, below 2): |mean| <= B, 0 <= l1 <= count B,
// 0 <= l2sq <= count B^2, |M_k| <= count (2 B)^k (with slack for rounding).  Finalising such a row
// gives finite statistics but for l1 and l2 beyond the float64 range.
bool valid_state_row(const double* s, std::int64_t count) {
    for (py::ssize_t k = 0; k < kStateColumns; ++k)
        if (!std::isfinite(s[k])) return false;
    const Moments m = state_row(s, count);
    if (!(m.min_abs >= 0.0 && m.min_abs <= m.max_abs && m.exponent == gradstats::scale_exponent(m.max_abs)))
        return false;
    if (m.max_abs == 0.0) return m.mean == 0.0 && m.mean_lo == 0.0 && m.l1 == 0.0 && m.l2sq == 0.0 && m.m2 == 0.0 &&
                                 m.m3 == 0.0 && m.m4 == 0.0;
    const double n = m.n, bound = std::ldexp(m.max_abs, -static_cast<int>(m.exponent)) * (1.0 + 1e-6);
    const double spread2 = 4.0 * bound * bound;
    // M2 and M4 of (near-)constant rows may round to just below 0: only their size is bounded.
    return std::fabs(m.mean + m.mean_lo) <= bound && m.l1 >= 0.0 && m.l1 <= n * bound && m.l2sq >= 0.0 &&
           m.l2sq <= n * bound * bound && std::fabs(m.m2) <= n * spread2 &&
           std::fabs(m.m3) <= n * spread2 * 2.0 * bound && std::fabs(m.m4) <= n * spread2 * spread2;
}

void check_state(const py::array& state, std::int64_t count) {
    require(float_type(state, "state") == FloatType::f64, "state must be float64");
    require_ndim(state, "state", 2);
    require_c_contiguous(state, "state");
    require(state.shape(1) == kStateColumns, "state must have " + std::to_string(kStateColumns) + " columns");
    require(state.shape(0) >= 1, "state must have at least one row");
    require(count >= 0 && count <= kMaxCount, "count must be in [0, 2**53], got " + std::to_string(count));
    if (count == 0) return;  // the rows are not read
    const double* s = static_cast<const double*>(state.data());
    for (py::ssize_t row = 0; row < state.shape(0); ++row)
        if (!valid_state_row(s + row * kStateColumns, count))
            fail("state row " + std::to_string(row) + " is not a gradient-statistics state");
}

void update_entry(const py::array& state, std::int64_t count, const py::array& chunk, bool use_cuda) {
    check_state(state, count);
    require(state.writeable(), "state must be writeable");
    const FloatType type = float_type(chunk, "chunk");
    require_ndim(chunk, "chunk", 2);
    require_c_contiguous(chunk, "chunk");
    require_nonempty(chunk, "chunk");
    require(chunk.shape(0) == state.shape(0), "chunk has " + std::to_string(chunk.shape(0)) +
                                                  " rows, expected n=" + std::to_string(state.shape(0)));
    require(chunk.shape(1) <= kMaxCount - count, "count + the chunk's columns must be <= 2**53");
    if (type == FloatType::f32)
        update<float>(state, count, chunk, use_cuda);
    else
        update<double>(state, count, chunk, use_cuda);
}

// The seven statistics per row.  Skewness and kurtosis follow scipy.stats
// (biased; kurtosis Fisher) including its rule for (near-)constant rows: NaN
// where m2 <= (eps * mean)^2, eps the float64 machine epsilon; both, and that
// rule, are scale-invariant, so they come from the scaled moments.  l1, l2 and
// the mean are scaled back by 2^e; l1 and l2 are +inf where they exceed the
// float64 range (the Python layer warns).
py::array_t<double> finalize_entry(const py::array& state, std::int64_t count) {
    check_state(state, count);
    require(count >= 1, "count must be >= 1: call update(chunk) before finalize()");
    const std::int64_t n = state.shape(0);
    py::array_t<double> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(7)});
    const double* s = static_cast<const double*>(state.data());
    double* o = out.mutable_data();
    const double eps = std::numeric_limits<double>::epsilon();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::int64_t row = 0; row < n; ++row) {
        const Moments m = state_row(s + row * kStateColumns, count);
        const int e = static_cast<int>(m.exponent);
        const double m2 = m.m2 / m.n, m3 = m.m3 / m.n, m4 = m.m4 / m.n;
        const double mean = m.mean + m.mean_lo;
        const bool constant = m2 <= (eps * mean) * (eps * mean);
        double* r = o + row * 7;
        r[0] = std::ldexp(m.l1, e);
        r[1] = std::ldexp(std::sqrt(m.l2sq), e);
        r[2] = m.min_abs;
        r[3] = m.max_abs;
        r[4] = std::ldexp(mean, e);
        r[5] = constant ? nan : m3 / std::pow(m2, 1.5);
        r[6] = constant ? nan : m4 / (m2 * m2) - 3.0;
    }
    return out;
}

}  // namespace

void register_gradstats(py::module_& m) {
    m.def("gradstats_update", &update_entry, py::arg("state"), py::arg("count"), py::arg("chunk"),
          py::arg("use_cuda") = false,
          "Fold an (n, p) float32/float64 chunk into the (n, 10) float64 state of tfmia.gradstats."
          "GradientStats, which so far summarises `count` elements per row.  In place; the state is "
          "unchanged if the chunk holds NaN or Inf (ValueError).");
    m.def("gradstats_finalize", &finalize_entry, py::arg("state"), py::arg("count"),
          "The (n, 7) statistics l1, l2, min_abs, max_abs, mean, skewness, kurtosis of a state.");
}

}  // namespace tfmia
