// Fused per-sample signals: loss, confidence, max, sd, entropy, modified entropy,
// correctness and LiRA's logit confidence from one (N, C) array of
// probabilities or logits.  The formulas live in signals_row.hpp (shared with the
// CUDA kernel); this file holds the CPU passes and the Python binding.
//
// Every row is read in a few passes while it sits in L1 (prob: 2, logits: 4),
// eight doubles at a time with the branch-free exp/log of vecmath.hpp; rows are
// spread over OpenMP threads and the GIL is released.  Validation (NaN/Inf,
// negative probabilities, row sums) happens in the same passes: the first bad
// row is recorded and reported after the loop.  Extra memory: the outputs plus
// one C-double scratch row per thread (logits only).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "common.hpp"
#include "registry.hpp"
#include "signals_row.hpp"
#include "simd.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/rows.hpp"
#endif

namespace tfmia {

namespace {

using simd::kWidth;
using simd::vdouble;
using simd::vint;

template <class T>
struct Args {
    const T* preds;
    const std::int64_t* labels;
    std::int64_t n, c;
    double sum_tol;  // < 0: no row-sum check
    signals::Outputs<T> out;
};

// ---- one probability row ---------------------------------------------------

template <class T>
TFMIA_HD signals::ProbRow prob_row(const T* p, std::int64_t c, std::int64_t y) {
    using namespace signals;
    vdouble sum{}, sum_noty{}, entropy{}, mentr_noty{};
    vdouble lane_min = simd::splat(simd::kInf), lane_max = simd::splat(-simd::kInf);
    vint lane_argmax{}, finite = ~vint{};
    std::int64_t j = 0;
    for (; j + kWidth <= c; j += kWidth) {
        const vdouble v = simd::load(p + j);
        const vint col = simd::iota(j);
        const vint other = col != y;
        finite &= simd::finite(v);
        sum += v;
        sum_noty += other ? v : 0.0;
        entropy += entropy_term(v);
        mentr_noty += other ? mentr_term(v) : 0.0;
        lane_min = v < lane_min ? v : lane_min;
        const vint above = v > lane_max;
        lane_argmax = above ? col : lane_argmax;
        lane_max = above ? v : lane_max;
    }
    ProbRow r = prob_row_init();
    r.sum = simd::sum(sum);
    r.sum_noty = simd::sum(sum_noty);
    r.entropy = simd::sum(entropy);
    r.mentr_noty = simd::sum(mentr_noty);
    r.min = simd::min(lane_min);
    r.argmax = c;
    simd::fold_argmax(lane_max, lane_argmax, r.max, r.argmax);
    r.finite = simd::all(finite);
    for (; j < c; ++j) prob_accumulate(r, static_cast<double>(p[j]), j, y);
    if (prob_status(r, -1.0) != kOk) return r;

    const double mean = r.sum / static_cast<double>(c);
    vdouble sq{};
    for (j = 0; j + kWidth <= c; j += kWidth) {
        const vdouble d = simd::load(p + j) - mean;
        sq += d * d;
    }
    r.sq_dev = simd::sum(sq);
    for (; j < c; ++j) {
        const double d = static_cast<double>(p[j]) - mean;
        r.sq_dev += d * d;
    }
    return r;
}

// ---- one logit row (e: scratch for exp(z - m), c doubles) -------------------

template <class T>
TFMIA_HD signals::LogitRow logit_row(const T* z, std::int64_t c, std::int64_t y, double* e) {
    using namespace signals;
    LogitRow r = logit_row_init();
    {  // pass 1: max, first argmax, max over j != y, finiteness
        vdouble lane_max = simd::splat(-simd::kInf), lane_max_noty = lane_max;
        vint lane_argmax{}, finite = ~vint{};
        std::int64_t j = 0;
        for (; j + kWidth <= c; j += kWidth) {
            const vdouble v = simd::load(z + j);
            const vint col = simd::iota(j);
            finite &= simd::finite(v);
            const vint above = v > lane_max;
            lane_argmax = above ? col : lane_argmax;
            lane_max = above ? v : lane_max;
            const vdouble other = col != y ? v : -simd::kInf;
            lane_max_noty = other > lane_max_noty ? other : lane_max_noty;
        }
        r.argmax = c;
        simd::fold_argmax(lane_max, lane_argmax, r.max, r.argmax);
        r.max_noty = simd::max(lane_max_noty);
        r.finite = simd::all(finite);
        for (; j < c; ++j) logit_accumulate_max(r, static_cast<double>(z[j]), j, y);
        if (!r.finite) return r;
    }
    const double m = r.max;
    const std::int64_t a = r.argmax;
    {  // pass 2: e_j = exp(z_j - m) and its sums
        vdouble s{}, s_noty{}, s_nota{};
        std::int64_t j = 0;
        for (; j + kWidth <= c; j += kWidth) {
            const vdouble v = vm::exp(simd::load(z + j) - m);
            const vint col = simd::iota(j);
            simd::store(e + j, v);
            s += v;
            s_noty += col != y ? v : 0.0;
            s_nota += col != a ? v : 0.0;
        }
        r.s = simd::sum(s);
        r.s_noty = simd::sum(s_noty);
        r.s_nota = simd::sum(s_nota);
        for (; j < c; ++j) {
            e[j] = vm::exp(static_cast<double>(z[j]) - m);
            logit_accumulate_exp(r, e[j], j, y);
        }
    }
    const double log_s = signals::logit_log_s(r);
    const double inv_s = 1.0 / r.s;
    {  // pass 3: p_j = e_j / S
        vdouble sum_p{}, entropy{}, mentr_rest{};
        std::int64_t j = 0;
        for (; j + kWidth <= c; j += kWidth) {
            const vdouble p = simd::load(e + j) * inv_s;
            const vint col = simd::iota(j);
            sum_p += p;
            entropy += p * ((m - simd::load(z + j)) + log_s);
            mentr_rest += (col != y) & (col != a) ? mentr_term(p) : 0.0;
        }
        r.sum_p = simd::sum(sum_p);
        r.entropy = simd::sum(entropy);
        r.mentr_rest = simd::sum(mentr_rest);
        for (; j < c; ++j) logit_accumulate_prob(r, e[j] * inv_s, m - static_cast<double>(z[j]), log_s, j, y);
    }
    {  // pass 4: squared deviations of p around its mean
        const double mean = r.sum_p / static_cast<double>(c);
        vdouble sq{};
        std::int64_t j = 0;
        for (; j + kWidth <= c; j += kWidth) {
            const vdouble d = simd::load(e + j) * inv_s - mean;
            sq += d * d;
        }
        r.sq_dev = simd::sum(sq);
        for (; j < c; ++j) {
            const double d = e[j] * inv_s - mean;
            r.sq_dev += d * d;
        }
    }
    if (signals::needs_shifted_sum(r, y)) {  // rare: every other logit > 600 below z_y
        double s = 0.0;
        for (std::int64_t j = 0; j < c; ++j)
            if (j != y) s += vm::exp(static_cast<double>(z[j]) - r.max_noty);
        r.s_noty_shifted = s;
    }
    return r;
}

// ---- row ranges (compiled per instruction set) ------------------------------

// Returns the first invalid row in [begin, end), or a.n.
template <class T>
TFMIA_TARGET_CLONES std::int64_t prob_rows(const Args<T>& a, std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
        const T* p = a.preds + i * a.c;
        const std::int64_t y = a.labels[i];
        const signals::ProbRow r = prob_row(p, a.c, y);
        if (signals::prob_status(r, a.sum_tol) != signals::kOk) return i;
        signals::store(a.out, i, signals::prob_values(r, static_cast<double>(p[y]), a.c, y));
    }
    return a.n;
}

template <class T>
TFMIA_TARGET_CLONES std::int64_t logit_rows(const Args<T>& a, std::int64_t begin, std::int64_t end,
                                            double* scratch) {
    for (std::int64_t i = begin; i < end; ++i) {
        const T* z = a.preds + i * a.c;
        const std::int64_t y = a.labels[i];
        const signals::LogitRow r = logit_row(z, a.c, y, scratch);
        if (!r.finite) return i;
        signals::store(a.out, i, signals::logit_values(r, static_cast<double>(z[y]), scratch[y], a.c, y));
    }
    return a.n;
}

// Runs every row on the CPU; returns the first invalid row, or a.n.
template <class T>
std::int64_t compute_cpu(const Args<T>& a, bool from_logits) {
    // Blocks of about 16k elements keep scheduling cheap for small C.
    const std::int64_t block = std::max<std::int64_t>(1, 16384 / a.c);
    const std::int64_t blocks = (a.n + block - 1) / block;
    std::vector<double> scratch(from_logits ? static_cast<std::size_t>(num_threads() * a.c) : 0);
    std::int64_t first_bad = a.n;
#pragma omp parallel reduction(min : first_bad)
    {
#ifdef TFMIA_HAVE_OPENMP
        double* mine = scratch.data() + (from_logits ? omp_get_thread_num() * a.c : 0);
#else
        double* mine = scratch.data();
#endif
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int64_t begin = b * block, end = std::min(a.n, begin + block);
            const std::int64_t bad = from_logits ? logit_rows(a, begin, end, mine) : prob_rows(a, begin, end);
            first_bad = std::min(first_bad, bad);
        }
    }
    return first_bad;
}

// ---- validation and messages -----------------------------------------------

std::string shape_text(std::int64_t n, std::int64_t c) {
    return "(" + std::to_string(n) + ", " + std::to_string(c) + ")";
}

// Why row i of preds was rejected (re-checked here, one row, scalar).
template <class T>
std::string describe_bad_row(const Args<T>& a, std::int64_t i, bool from_logits) {
    const T* row = a.preds + i * a.c;
    double sum = 0.0;
    bool finite = true, negative = false;
    for (std::int64_t j = 0; j < a.c; ++j) {
        const double v = static_cast<double>(row[j]);
        finite = finite && signals::is_finite(v);
        negative = negative || v < 0.0;
        sum += v;
    }
    std::ostringstream msg;
    msg.precision(17);
    if (from_logits || !finite) {  // logit rows fail only on NaN/Inf
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

template <class T>
py::dict run(const py::array& preds, const std::int64_t* labels, bool from_logits, double sum_tol, bool use_cuda) {
    const std::int64_t n = preds.shape(0), c = preds.shape(1);
    py::array_t<T> loss(n), confidence(n), max(n), sd(n), entropy(n), modified_entropy(n), logit_confidence(n);
    py::array_t<bool> correct(n);
    const Args<T> a{static_cast<const T*>(preds.data()),
                    labels,
                    n,
                    c,
                    sum_tol,
                    {loss.mutable_data(), confidence.mutable_data(), max.mutable_data(), sd.mutable_data(),
                     entropy.mutable_data(), modified_entropy.mutable_data(), correct.mutable_data(),
                     logit_confidence.mutable_data()}};
    std::int64_t first_bad;
    {
        py::gil_scoped_release release;
        if (use_cuda) {
#ifdef TFMIA_HAVE_CUDA
            first_bad = cuda::signals(a.preds, a.labels, n, c, from_logits, sum_tol, a.out);
#else
            fail("device='cuda' is not available: tfmia was built without CUDA (rebuild with TFMIA_CUDA=ON)");
#endif
        } else {
            first_bad = compute_cpu(a, from_logits);
        }
    }
    if (first_bad < n) fail(describe_bad_row(a, first_bad, from_logits));
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
                       std::optional<double> sum_tol, bool use_cuda) {
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
        require(y[i] >= 0 && y[i] < c, "labels[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                                           " is out of range for " + std::to_string(c) + " classes");
    double tol = -1.0;
    if (sum_tol) {
        require(std::isfinite(*sum_tol) && *sum_tol >= 0.0, "sum_tol must be a finite number >= 0 or None");
        tol = *sum_tol;
    }
    return type == FloatType::f32 ? run<float>(preds, y, from_logits, tol, use_cuda)
                                  : run<double>(preds, y, from_logits, tol, use_cuda);
}

// Testing hook: applies vm::exp, log, log1p or log1m(., 1e-30) elementwise,
// through the SIMD lanes for full blocks of eight and the scalar code for the rest.
enum class VecmathFn { exp, log, log1p, log1m };

template <VecmathFn F, class D>
TFMIA_HD D vecmath_apply(const D& x) {
    if constexpr (F == VecmathFn::exp) return vm::exp(x);
    if constexpr (F == VecmathFn::log) return vm::log(x);
    if constexpr (F == VecmathFn::log1p) return vm::log1p(x);
    if constexpr (F == VecmathFn::log1m) return vm::log1m(x, signals::kFloor);
}

template <VecmathFn F>
TFMIA_TARGET_CLONES void vecmath_lanes(const double* x, double* y, std::int64_t n) {
    std::int64_t i = 0;
    for (; i + kWidth <= n; i += kWidth) simd::store(y + i, vecmath_apply<F>(simd::load(x + i)));
    for (; i < n; ++i) y[i] = vecmath_apply<F>(x[i]);
}

py::array_t<double> vecmath_entry(const std::string& name, const py::array& x) {
    require(float_type(x, "x") == FloatType::f64, "x must be float64");
    require_ndim(x, "x", 1);
    require_c_contiguous(x, "x");
    const std::int64_t n = x.shape(0);
    py::array_t<double> y(n);
    const double* in = static_cast<const double*>(x.data());
    double* out = y.mutable_data();
    if (name == "exp")
        vecmath_lanes<VecmathFn::exp>(in, out, n);
    else if (name == "log")
        vecmath_lanes<VecmathFn::log>(in, out, n);
    else if (name == "log1p")
        vecmath_lanes<VecmathFn::log1p>(in, out, n);
    else if (name == "log1m")
        vecmath_lanes<VecmathFn::log1m>(in, out, n);
    else
        fail("name must be 'exp', 'log', 'log1p' or 'log1m', got '" + name + "'");
    return y;
}

}  // namespace

void register_signals(py::module_& m) {
    m.def("signals", &signals_entry, py::arg("preds"), py::arg("labels"), py::arg("from_logits"),
          py::arg("sum_tol"), py::arg("use_cuda") = false,
          "Fused per-sample signals of an (N, C) float32/float64 C-contiguous array of probabilities "
          "(from_logits=False) or logits, with int64 labels.  Returns a dict of N-arrays: loss, "
          "confidence, max, sd, entropy, modified_entropy, logit_confidence (input dtype) and correct "
          "(bool).  sum_tol=None skips the row-sum check.  See tfmia.signals for the formulas.");
    m.def("_vecmath", &vecmath_entry, py::arg("name"), py::arg("x"),
          "Testing hook: the core's vectorised exp, log, log1p or log1m (log(max(1 - x, 1e-30))) applied to "
          "a float64 1-D array.");
}

}  // namespace tfmia
