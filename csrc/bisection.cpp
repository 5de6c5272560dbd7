// Batched bisection bookkeeping for boundary distances (tfmia.bisection),
// Python binding.
//
// The Python BisectionState owns the arrays; one call of bisection_update
// applies one step (bisection_row.hpp) to every record that was queried:
//   1. decide, from the probabilities at each queried midpoint (O(K C), also
//      where NaN/Inf and out-of-range classes are found: nothing is modified
//      when the probabilities are invalid);
//   2. apply, in place and in one pass over each record's points: move lo or
//      hi to mid and recompute mid, or record the distance of a converged one.
//      The points of a BisectionState are finite by construction (checked
//      when it is made; midpoints of finite points stay finite); a direct
//      call with a NaN or Inf in the points it reads is refused, naming the
//      array and record, after the step (checking first would read every
//      point twice).
// Both phases run in parallel over records with the GIL released.  Extra
// memory: one byte per queried record.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "bisection_row.hpp"
#include "common.hpp"
#include "registry.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/rows.hpp"
#endif

namespace tfmia {

namespace {

using bisection::Decision;

std::string shape_text(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks dtype, 1-D length n, contiguity and (when written) writeability.
template <class V>
V* vector_of(const py::array& a, const char* name, py::ssize_t n, bool written) {
    if (!py::isinstance<py::array_t<V>>(a))
        fail(std::string(name) + " has dtype " + std::string(py::str(a.dtype())) + ", expected " +
             std::string(py::str(py::dtype::of<V>())));
    require_ndim(a, name, 1);
    require_c_contiguous(a, name);
    require(a.shape(0) == n, std::string(name) + " has " + std::to_string(a.shape(0)) + " entries, expected " +
                                 std::to_string(n));
    require(!written || a.writeable(), std::string(name) + " must be writeable");
    return static_cast<V*>(const_cast<void*>(a.data()));
}

using bisection::Points;
using bisection::Records;

// 1 where a value's exponent bits are all ones (NaN or Inf), else 0: a test
// without a branch, so that OR-ing it over a row stays in the vectorised loop.
template <class T>
inline unsigned nonfinite_bit(T v) {
    using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    constexpr Bits exponent = sizeof(T) == 8 ? Bits(0x7ff0000000000000ULL) : Bits(0x7f800000U);
    Bits bits;
    std::memcpy(&bits, &v, sizeof bits);
    return static_cast<unsigned>((bits & exponent) == exponent);
}

// Bits naming the point arrays where apply() read a NaN or Inf.
enum NonFinite : unsigned { kMidBad = 1, kLoBad = 2, kHiBad = 4, kX0Bad = 8 };

// NonFinite bits of the arrays a and b hold a NaN or Inf in their first d values.
template <class T>
unsigned nonfinite_arrays(const T* a, unsigned a_bit, const T* b, unsigned b_bit, std::int64_t d) {
    unsigned in_a = 0, in_b = 0;
    for (std::int64_t j = 0; j < d; ++j) {
        in_a |= nonfinite_bit(a[j]);
        in_b |= nonfinite_bit(b[j]);
    }
    return (in_a ? a_bit : 0u) | (in_b ? b_bit : 0u);
}

// Phase 2 for queried record i: one pass over its d coordinates.  Returns the
// NonFinite bits of the arrays it read a NaN or Inf from (0: all finite).
// The pass watches only the sums it forms, which are non-finite when an input
// is (or when two double coordinates beyond 2^1023 overflow); the rare row
// where one is looks at its inputs again.
template <class T>
unsigned apply(const Records& rec, const Points<T>& pts, std::int64_t i, Decision decision) {
    const std::int64_t r = rec.rows[i], d = rec.d;
    T* mid = pts.mid + r * d;
    rec.steps[r] += 1;
    if (decision == bisection::kConverged) {
        const T* x0 = pts.x0 + r * d;
        double sq = 0.0;
        for (std::int64_t j = 0; j < d; ++j) {
            const double diff = static_cast<double>(mid[j]) - static_cast<double>(x0[j]);
            sq += diff * diff;
        }
        const unsigned bad = nonfinite_bit(sq) ? nonfinite_arrays(mid, kMidBad, x0, kX0Bad, d) : 0u;
        rec.distance[r] = bisection::finish_distance(sq, mid, x0, d);
        rec.converged[r] = true;
        rec.active[r] = false;
        return bad;
    }
    T* moved = (decision == bisection::kToLo ? pts.lo : pts.hi) + r * d;
    const T* other = (decision == bisection::kToLo ? pts.hi : pts.lo) + r * d;
    unsigned sum_bad = 0;
    for (std::int64_t j = 0; j < d; ++j) {
        const T m = mid[j];
        const double sum = static_cast<double>(m) + static_cast<double>(other[j]);
        // float: test the inputs (32-bit lanes stay twice as wide as a test of the double sum)
        if constexpr (sizeof(T) < sizeof(double))
            sum_bad |= nonfinite_bit(m) | nonfinite_bit(other[j]);
        else
            sum_bad |= nonfinite_bit(sum);
        moved[j] = m;
        mid[j] = static_cast<T>(sum * 0.5);
    }
    if (rec.steps[r] >= rec.max_steps) rec.active[r] = false;
    if (!sum_bad) return 0;
    // moved now holds the old midpoint.
    const unsigned bad = nonfinite_arrays(moved, kMidBad, other, decision == bisection::kToLo ? kHiBad : kLoBad, d);
    if (!bad)  // finite coordinates whose sum overflowed: add the halves instead
        for (std::int64_t j = 0; j < d; ++j) mid[j] = bisection::midpoint(moved[j], other[j]);
    return bad;
}

// Returns the first invalid queried record (decisions[i] says why) without
// changing anything, or -1 after applying the step.  Non-finite points are
// found while the step is applied (the points of every record BisectionState
// holds are finite by construction, so only a direct call of the core can
// bring them): *bad_points is then the first such record and its NonFinite
// bits, and the records are left stepped.
template <class T, class P>
std::int64_t step_cpu(const Records& rec, const Points<T>& pts, const P* probs, std::int8_t* decisions,
                      std::pair<std::int64_t, unsigned>* bad_points) {
    std::int64_t first_bad = rec.k;
    // Below ~1M values (about a millisecond of work) a thread team is not worth waking.
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (rec.k * rec.c >= (1 << 20))
    for (std::int64_t i = 0; i < rec.k; ++i) {
        const Decision d = bisection::decide(probs + i * rec.c, rec.c, rec.orig[rec.rows[i]], rec.theta);
        decisions[i] = d;
        if (d == bisection::kBadProbs || d == bisection::kBadClass) first_bad = std::min(first_bad, i);
    }
    if (first_bad < rec.k) return first_bad;
    std::int64_t first_nonfinite = rec.k;
#pragma omp parallel for schedule(static) reduction(min : first_nonfinite) if (rec.k * rec.d >= (1 << 20))
    for (std::int64_t i = 0; i < rec.k; ++i) {
        const unsigned which = apply(rec, pts, i, static_cast<Decision>(decisions[i]));
        decisions[i] = static_cast<std::int8_t>(which);  // the decision is spent: keep what apply found instead
        if (which != 0) first_nonfinite = std::min(first_nonfinite, i);
    }
    if (first_nonfinite < rec.k) *bad_points = {first_nonfinite, static_cast<unsigned>(decisions[first_nonfinite])};
    return -1;
}

// The first queried record with a NaN or Inf coordinate in the four point
// arrays, or rec.k: the CUDA step does not look, so its caller checks first.
template <class T>
std::int64_t first_nonfinite_record(const Records& rec, const Points<T>& pts) {
    std::int64_t first = rec.k;
#pragma omp parallel for schedule(static) reduction(min : first) if (rec.k * rec.d >= (1 << 20))
    for (std::int64_t i = 0; i < rec.k; ++i) {
        const std::int64_t offset = rec.rows[i] * rec.d;
        unsigned bad = 0;
        for (std::int64_t j = 0; j < rec.d; ++j)
            bad |= nonfinite_bit(pts.x0[offset + j]) | nonfinite_bit(pts.lo[offset + j]) |
                   nonfinite_bit(pts.hi[offset + j]) | nonfinite_bit(pts.mid[offset + j]);
        if (bad) first = std::min(first, i);
    }
    return first;
}

// "x0, lo must be finite (...)": the arrays named by the NonFinite bits.
std::string nonfinite_message(const Records& rec, std::int64_t i, unsigned which) {
    std::string names;
    for (const auto& [bit, name] : {std::pair{kX0Bad, "x0"}, {kLoBad, "lo"}, {kHiBad, "hi"}, {kMidBad, "mid"}})
        if (which & bit) names += (names.empty() ? "" : ", ") + std::string(name);
    return names + " must be finite (found NaN or Inf in record " + std::to_string(rec.rows[i]) + ")";
}

template <class T, class P>
void run(const Records& rec, const Points<T>& pts, const P* probs, bool use_cuda) {
    std::vector<std::int8_t> decisions(static_cast<std::size_t>(rec.k));
    std::int64_t bad = -1;
    std::pair<std::int64_t, unsigned> bad_points{rec.k, 0};
    {
        py::gil_scoped_release release;
        if (use_cuda) {
#ifdef TFMIA_HAVE_CUDA
            const std::int64_t nonfinite = first_nonfinite_record(rec, pts);  // nothing is modified when found
            if (nonfinite < rec.k)
                bad_points = {nonfinite, kX0Bad | kLoBad | kHiBad | kMidBad};
            else
                bad = cuda::bisection_step(rec, pts, probs, decisions.data());
#else
            fail("device='cuda' is not available: tfmia was built without CUDA (rebuild with TFMIA_CUDA=ON)");
#endif
        } else {
            bad = step_cpu(rec, pts, probs, decisions.data(), &bad_points);
        }
    }
    if (bad_points.first < rec.k) fail(nonfinite_message(rec, bad_points.first, bad_points.second));
    if (bad < 0) return;
    const std::int64_t r = rec.rows[bad];
    if (decisions[bad] == bisection::kBadClass)
        fail("orig_class[" + std::to_string(r) + "] = " + std::to_string(rec.orig[r]) +
             " is out of range for mid_probs with " + std::to_string(rec.c) + " classes");
    fail("mid_probs contains NaN or Inf (first in row " + std::to_string(bad) + ", record " + std::to_string(r) +
         ")");
}

template <class T>
Points<T> points_of(const py::array& x0, const py::array& lo, const py::array& hi, const py::array& mid) {
    auto writable = [](const py::array& a) { return static_cast<T*>(const_cast<void*>(a.data())); };
    return Points<T>{static_cast<const T*>(x0.data()), writable(lo), writable(hi), writable(mid)};
}

template <class T>
void run_points(const Records& rec, const py::array& x0, const py::array& lo, const py::array& hi,
                const py::array& mid, const py::array& probs, FloatType ptype, bool use_cuda) {
    const Points<T> pts = points_of<T>(x0, lo, hi, mid);
    if (ptype == FloatType::f32)
        run(rec, pts, static_cast<const float*>(probs.data()), use_cuda);
    else
        run(rec, pts, static_cast<const double*>(probs.data()), use_cuda);
}

void update_entry(const py::array& x0, const py::array& lo, const py::array& hi, const py::array& mid,
                  const py::array& rows, const py::array& mid_probs, const py::array& orig_class,
                  const py::array& active, const py::array& converged, const py::array& distance,
                  const py::array& steps, double theta, std::int64_t max_steps, bool use_cuda) {
    const FloatType type = float_type(x0, "x0");
    require_ndim(x0, "x0", 2);
    require_c_contiguous(x0, "x0");
    require_nonempty(x0, "x0");
    Records rec{};
    rec.n = x0.shape(0);
    rec.d = x0.shape(1);
    const std::pair<const py::array*, const char*> points[] = {{&lo, "lo"}, {&hi, "hi"}, {&mid, "mid"}};
    for (const auto& [a, name] : points) {
        require(float_type(*a, name) == type, std::string(name) + " must have the dtype of x0");
        require(a->ndim() == 2 && a->shape(0) == rec.n && a->shape(1) == rec.d,
                std::string(name) + " has shape " + shape_text(*a) + ", expected the shape of x0 " + shape_text(x0));
        require_c_contiguous(*a, name);
        require(a->writeable(), std::string(name) + " must be writeable");
    }
    require(std::isfinite(theta) && theta > 0.0, "theta must be a finite number > 0");
    require(max_steps >= 1, "max_steps must be >= 1");
    rec.theta = theta;
    rec.max_steps = max_steps;
    rec.orig = vector_of<std::int64_t>(orig_class, "orig_class", rec.n, false);
    rec.active = vector_of<bool>(active, "active", rec.n, true);
    rec.converged = vector_of<bool>(converged, "converged", rec.n, true);
    rec.distance = vector_of<double>(distance, "distance", rec.n, true);
    rec.steps = vector_of<std::int64_t>(steps, "steps", rec.n, true);

    const FloatType ptype = float_type(mid_probs, "mid_probs");
    require_ndim(mid_probs, "mid_probs", 2);
    require_c_contiguous(mid_probs, "mid_probs");
    rec.k = mid_probs.shape(0);
    rec.c = mid_probs.shape(1);
    require(rec.c >= 2, "mid_probs must have at least 2 classes, got shape " + shape_text(mid_probs));
    rec.rows = vector_of<std::int64_t>(rows, "rows", rec.k, false);
    for (std::int64_t i = 0; i < rec.k; ++i) {
        const std::int64_t r = rec.rows[i];
        if (r < 0 || r >= rec.n || (i > 0 && r <= rec.rows[i - 1]) || !rec.active[r])
            fail("rows must be the increasing indices of active records (rows[" + std::to_string(i) + "] = " +
                 std::to_string(r) + ")");
        if (rec.steps[r] < 0 || rec.steps[r] >= max_steps)
            fail("steps[" + std::to_string(r) + "] = " + std::to_string(rec.steps[r]) +
                 " must be in [0, max_steps) for an active record");
    }
    if (type == FloatType::f32)
        run_points<float>(rec, x0, lo, hi, mid, mid_probs, ptype, use_cuda);
    else
        run_points<double>(rec, x0, lo, hi, mid, mid_probs, ptype, use_cuda);
}

}  // namespace

void register_bisection(py::module_& m) {
    m.def("bisection_update", &update_entry, py::arg("x0"), py::arg("lo"), py::arg("hi"), py::arg("mid"),
          py::arg("rows"), py::arg("mid_probs"), py::arg("orig_class"), py::arg("active"), py::arg("converged"),
          py::arg("distance"), py::arg("steps"), py::arg("theta"), py::arg("max_steps"), py::arg("use_cuda") = false,
          "One bisection step of tfmia.bisection.BisectionState, in place: x0, lo, hi, mid are (N, D) "
          "float32/float64 arrays of one dtype, rows the K queried (active) records in increasing order, "
          "mid_probs their (K, C) class probabilities at mid, and orig_class, active, converged, distance, "
          "steps the per-record state.  Nothing changes if a probability is NaN/Inf or a class is out of "
          "range (ValueError).");
}

}  // namespace tfmia
