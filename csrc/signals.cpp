// Fused per-sample signals: loss, confidence, max, sd, entropy, modified entropy,
// correctness and LiRA's logit confidence from one (N, C) array of
// probabilities or logits, with the Python binding.
//
// The formulas live in signals_row.hpp (shared with the CUDA kernel), the CPU
// passes in row_kernels_impl.hpp (compiled per instruction set).  This file
// validates the arguments, spreads blocks of rows over OpenMP threads with the
// GIL released, and turns the first invalid row (recorded in the same pass
// that computes) into a ValueError.  Extra memory: the outputs plus 16 C
// doubles of scratch per thread.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <pybind11/stl.h>

#include "common.hpp"
#include "registry.hpp"
#include "row_kernels.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/rows.hpp"
#endif

namespace tfmia {

namespace {

// Runs every row on the CPU; returns the first invalid row, or -1.
template <class T>
std::int64_t compute_cpu(const SignalsArgs<T>& a) {
    const RowKernels& kernels = row_kernels();
    auto rows = [&kernels]() {
        if constexpr (std::is_same_v<T, float>)
            return kernels.signals_f32;
        else
            return kernels.signals_f64;
    }();
    // Blocks of whole eight-row groups, at most ~16k elements each (scheduling stays cheap
    // for small C), and at least eight per thread where there are enough rows (balance).
    const std::int64_t groups_cap = std::max<std::int64_t>(1, 2048 / a.c);
    const std::int64_t groups_balanced = (a.n + 64 * num_threads() - 1) / (64 * num_threads());
    const std::int64_t block = 8 * std::max<std::int64_t>(1, std::min(groups_cap, groups_balanced));
    const std::int64_t blocks = (a.n + block - 1) / block;
    const std::int64_t scratch_per_thread = signals_scratch(a.c);
    std::vector<double> scratch(static_cast<std::size_t>(num_threads() * scratch_per_thread));
    std::int64_t first_bad = a.n;
    // Below ~250k elements (about a millisecond of work) a thread team is not worth waking.
#pragma omp parallel reduction(min : first_bad) if (a.n * a.c >= (1 << 18))
    {
#ifdef TFMIA_HAVE_OPENMP
        double* mine = scratch.data() + omp_get_thread_num() * scratch_per_thread;
#else
        double* mine = scratch.data();
#endif
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int64_t begin = b * block, end = std::min(a.n, begin + block);
            const std::int64_t bad = rows(a, begin, end, mine);
            if (bad >= 0) first_bad = std::min(first_bad, bad);
        }
    }
    return first_bad < a.n ? first_bad : -1;
}

std::string shape_text(std::int64_t n, std::int64_t c) {
    return "(" + std::to_string(n) + ", " + std::to_string(c) + ")";
}

// Why row i of preds was rejected (re-checked here: one row, scalar).
template <class T>
std::string describe_bad_row(const SignalsArgs<T>& a, std::int64_t i) {
    const T* row = a.preds + i * a.c;
    double sum = 0.0;
    bool finite = true, negative = false;
    for (std::int64_t j = 0; j < a.c; ++j) {
        const double v = static_cast<double>(row[j]);
        finite = finite && std::isfinite(v);
        negative = negative || v < 0.0;
        sum += v;
    }
    std::ostringstream msg;
    msg.precision(17);
    if (a.from_logits || !finite) {  // logit rows fail only on NaN/Inf
        msg << "preds contains NaN or Inf (first in row " << i << ")";
    } else if (negative) {
        msg << "preds contains negative probabilities (first in row " << i
            << "); pass from_logits=True if preds are logits";
    } else {
        msg << "preds row " << i << " sums to " << sum << ", more than sum_tol=" << a.sum_tol
            << " away from 1; pass from_logits=True if preds are logits, or sum_tol=None for "
               "outputs that need not sum to 1 (e.g. top-k truncation)";
    }
    return msg.str();
}

// Checks the outputs, O(n) after the O(n c) kernel.  Without the row-sum
// check (sum_tol < 0) a probability above 1 + kMaxProbabilityExcess is no
// probability and is refused; probabilities up to 2 (that bound, or the
// row-sum check with sum_tol <= 1) keep every signal finite.  Beyond that,
// and for logits spread wider than the dtype's range, the signals that can
// overflow are checked: a non-finite one is refused naming preds rather than
// returned.
constexpr double kMaxProbabilityExcess = 1e-3;

// The first i with |v[i]| > bound or NaN, or n (one vectorisable pass while all is well).
template <class T>
std::int64_t first_beyond(const T* v, std::int64_t n, T bound) {
    bool any = false;
    for (std::int64_t i = 0; i < n; ++i) any |= !(std::fabs(v[i]) <= bound);
    if (!any) return n;
    std::int64_t i = 0;
    while (std::fabs(v[i]) <= bound) ++i;
    return i;
}

template <class T>
void check_outputs(const SignalsArgs<T>& a) {
    const SignalsOutputs<T>& o = a.out;
    if (!a.from_logits && a.sum_tol < 0.0) {
        const std::int64_t i = first_beyond(o.max, a.n, static_cast<T>(1.0 + kMaxProbabilityExcess));
        if (i < a.n) {
            std::ostringstream msg;
            msg.precision(17);
            msg << "preds row " << i << " holds a probability of " << static_cast<double>(o.max[i])
                << ", above 1 (sum_tol=None skips only the row-sum check); pass from_logits=True if preds are logits";
            fail(msg.str());
        }
        return;
    }
    if (!a.from_logits && a.sum_tol <= 1.0) return;
    // From logits, confidence, max, sd and modified_entropy are bounded whatever the logits.
    const std::vector<const T*> unbounded =
        a.from_logits ? std::vector<const T*>{o.loss, o.entropy, o.logit_confidence}
                      : std::vector<const T*>{o.loss,    o.confidence,       o.max, o.sd,
                                              o.entropy, o.modified_entropy, o.logit_confidence};
    std::int64_t first = a.n;
    for (const T* v : unbounded) first = std::min(first, first_beyond(v, first, std::numeric_limits<T>::max()));
    if (first < a.n)
        fail("preds row " + std::to_string(first) + " overflows the signals in " +
             (std::is_same_v<T, float> ? "float32" : "float64") +
             (a.from_logits ? " (logits spread wider than the dtype's range)" : " (probabilities far above 1)"));
}

template <class T>
py::dict run(const py::array& preds, const std::int64_t* labels, bool from_logits, double sum_tol, bool reference,
             bool use_cuda) {
    const std::int64_t n = preds.shape(0), c = preds.shape(1);
    py::array_t<T> loss(n), confidence(n), max(n), sd(n), entropy(n), modified_entropy(n), logit_confidence(n);
    py::array_t<bool> correct(n);
    const SignalsArgs<T> a{static_cast<const T*>(preds.data()),
                           labels,
                           n,
                           c,
                           from_logits,
                           sum_tol,
                           reference,
                           {loss.mutable_data(), confidence.mutable_data(), max.mutable_data(), sd.mutable_data(),
                            entropy.mutable_data(), modified_entropy.mutable_data(), correct.mutable_data(),
                            logit_confidence.mutable_data()}};
    std::int64_t first_bad;
    {
        py::gil_scoped_release release;
        if (use_cuda) {
#ifdef TFMIA_HAVE_CUDA
            first_bad = cuda::signals(a);
#else
            fail("device='cuda' is not available: tfmia was built without CUDA (rebuild with TFMIA_CUDA=ON)");
#endif
        } else {
            first_bad = compute_cpu(a);
        }
    }
    if (first_bad >= 0) fail(describe_bad_row(a, first_bad));
    check_outputs(a);
    py::dict result;
    result["loss"] = loss;
    result["confidence"] = confidence;
    result["max"] = max;
    result["sd"] = sd;
    result["entropy"] = entropy;
    result["modified_entropy"] = modified_entropy;
    result["correct"] = correct;
    result["logit_confidence"] = logit_confidence;
    return result;
}

py::dict signals_entry(const py::array& preds, const py::array& labels, bool from_logits,
                       std::optional<double> sum_tol, bool reference, bool use_cuda) {
    const FloatType type = float_type(preds, "preds");
    require_ndim(preds, "preds", 2);
    require_c_contiguous(preds, "preds");
    require_nonempty(preds, "preds");
    const std::int64_t n = preds.shape(0), c = preds.shape(1);
    require(c >= 2, "preds must have at least 2 classes, got shape " + shape_text(n, c));
    const std::int64_t* y = labels_ptr(labels, "labels");
    require(labels.shape(0) == n, "labels has " + std::to_string(labels.shape(0)) + " entries, expected " +
                                      std::to_string(n) + " (one per row of preds)");
    for (std::int64_t i = 0; i < n; ++i)
        if (y[i] < 0 || y[i] >= c)
            fail("labels[" + std::to_string(i) + "] = " + std::to_string(y[i]) + " is out of range for " +
                 std::to_string(c) + " classes");
    double tol = -1.0;
    if (sum_tol) {
        require(std::isfinite(*sum_tol) && *sum_tol >= 0.0, "sum_tol must be a finite number >= 0 or None");
        tol = *sum_tol;
    }
    require(!(reference && from_logits),
            "reference=True reproduces the reference code's formulas on probabilities; it needs "
            "from_logits=False (from logits every 1 - p is formed without cancellation)");
    return type == FloatType::f32 ? run<float>(preds, y, from_logits, tol, reference, use_cuda)
                                  : run<double>(preds, y, from_logits, tol, reference, use_cuda);
}

py::array_t<double> vecmath_entry(const std::string& name, const py::array& x) {
    require(float_type(x, "x") == FloatType::f64, "x must be float64");
    require_ndim(x, "x", 1);
    require_c_contiguous(x, "x");
    std::string known;
    for (std::size_t i = 0; i < std::size(kVecmathNames); ++i) {
        if (name == kVecmathNames[i]) {
            py::array_t<double> y(x.shape(0));
            row_kernels().vecmath(static_cast<VecmathFn>(i), static_cast<const double*>(x.data()),
                                  y.mutable_data(), x.shape(0));
            return y;
        }
        known += (i ? ", " : "") + std::string(kVecmathNames[i]);
    }
    fail("name must be one of " + known + ", got '" + name + "'");
}

}  // namespace

void register_signals(py::module_& m) {
    m.def("signals", &signals_entry, py::arg("preds"), py::arg("labels"), py::arg("from_logits"),
          py::arg("sum_tol"), py::arg("reference") = false, py::arg("use_cuda") = false,
          "Fused per-sample signals of an (N, C) float32/float64 C-contiguous array of probabilities "
          "(from_logits=False) or logits, with int64 labels.  Returns a dict of N-arrays: loss, "
          "confidence, max, sd, entropy, modified_entropy, logit_confidence (input dtype) and correct "
          "(bool).  sum_tol=None skips the row-sum check; reference=True (probabilities only) takes every "
          "log(1 - p) of 1 - p rounded to float64, as the reference code does.  See tfmia.signals for the "
          "formulas.");
    m.def("_vecmath", &vecmath_entry, py::arg("name"), py::arg("x"),
          "Testing hook: one of the CPU kernels' vectorised functions (exp, log, log1p, log1m = "
          "log(max(1 - x, 1e-30)), log1m_half, and pair_log / pair_log1m, the two halves of their fused "
          "pair) applied to a float64 1-D array.");
}

}  // namespace tfmia
