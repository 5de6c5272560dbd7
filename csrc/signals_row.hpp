// Formulas of the fused per-sample signals, shared by the CPU kernel
// (signals.cpp) and the CUDA kernel (cuda/signals.cu).
//
// A row (p = softmax, C classes, label y) is reduced to the sums in ProbRow or
// LogitRow, each path in its own order (SIMD lanes on the CPU, warp lanes on the
// GPU), and finished by the same functions below, so both paths evaluate the
// same expressions.  With L30 = -log(1e-30):
//
// From probabilities (Song & Mittal's reference, every log argument floored at 1e-30):
//   loss             = -log(max(p_y, 1e-30))
//   confidence       = p_y
//   max              = max_i p_i
//   sd               = sqrt(sum_i (p_i - mean)^2 / C)
//   entropy          = sum_i p_i * -log(max(p_i, 1e-30))
//   modified_entropy = (1 - p_y) * -log(max(p_y, 1e-30))
//                      + sum_{i != y} p_i * -log(max(1 - p_i, 1e-30))
//   correct          = first argmax == y
//   logit_confidence = log(p_y + 1e-45) - log(sum_{j != y} p_j + 1e-45)   (Carlini et al.)
//
// From logits z (m = max z, a = first argmax, e_i = exp(z_i - m), S = sum_i e_i,
// lse = m + log S, and log S = log1p(sum_{i != a} e_i) since e_a = 1):
//   loss             = lse - z_y = (m - z_y) + log S          (unfloored, as Keras)
//   confidence       = e_y / S,  max = 1 / S,  sd over p_i = e_i / S
//   entropy          = sum_i p_i ((m - z_i) + log S)
//   modified_entropy = (1 - p_y) min(lse - z_y, L30) + sum_{i != y} p_i min(-log(1 - p_i), L30)
//                      where 1 - p_a = sum_{j != a} e_j / S for the argmax a (no
//                      cancellation) and -log(1 - p_i) = -log1p(-p_i) otherwise (p_i <= 1/2)
//   logit_confidence = z_y - logsumexp_{j != y} z_j, shifted by max_{j != y} z_j when
//                      exp(z_j - m) would underflow (y the argmax by a margin > 600)
#pragma once

#include <cmath>
#include <cstdint>

#include "vecmath.hpp"

namespace tfmia::signals {

constexpr double kFloor = 1e-30;
constexpr double kNegLogFloor = 69.07755278982137;  // -log(1e-30)
constexpr double kLiraEps = 1e-45;
// When y is the argmax and every other logit is more than this below it,
// sum_{j != y} exp(z_j - m) could underflow; logit_confidence then re-sums with
// the shift max_{j != y} z_j.  Below the margin the largest term is >= e^-600,
// a normal double, and the terms that underflow are below its rounding error.
constexpr double kUnderflowMargin = 600.0;

enum Status : int { kOk = 0, kNonFinite = 1, kNegative = 2, kBadSum = 3 };

// Output pointers, one value per row.
template <class T>
struct Outputs {
    T* loss;
    T* confidence;
    T* max;
    T* sd;
    T* entropy;
    T* modified_entropy;
    bool* correct;
    T* logit_confidence;
};

struct Values {
    double loss, confidence, max, sd, entropy, modified_entropy, logit_confidence;
    bool correct;
};

template <class T>
TFMIA_HD void store(const Outputs<T>& out, std::int64_t row, const Values& v) {
    out.loss[row] = static_cast<T>(v.loss);
    out.confidence[row] = static_cast<T>(v.confidence);
    out.max[row] = static_cast<T>(v.max);
    out.sd[row] = static_cast<T>(v.sd);
    out.entropy[row] = static_cast<T>(v.entropy);
    out.modified_entropy[row] = static_cast<T>(v.modified_entropy);
    out.correct[row] = v.correct;
    out.logit_confidence[row] = static_cast<T>(v.logit_confidence);
}

TFMIA_HD bool is_finite(double x) { return std::fabs(x) <= 1.7976931348623157e308; }

// ---- per-element terms (D = double or SIMD lanes) --------------------------

// p * -log(max(p, 1e-30)): one term of the entropy of a probability row.
template <class D>
TFMIA_HD D entropy_term(const D& p) {
    return p * -vm::log(vm::at_least(p, kFloor));
}

// p * -log(max(1 - p, 1e-30)): one term of sum_{i != y} of the modified entropy.
template <class D>
TFMIA_HD D mentr_term(const D& p) {
    return p * -vm::log1m(p, kFloor);
}

// ---- probabilities ---------------------------------------------------------

struct ProbRow {
    double sum, sum_noty, entropy, mentr_noty;  // sum_noty, mentr_noty: over i != y
    double min, max;
    std::int64_t argmax;                        // first index of max
    bool finite;
    double sq_dev;                              // second pass: sum (p_i - mean)^2
};

TFMIA_HD ProbRow prob_row_init() {
    return ProbRow{0.0, 0.0, 0.0, 0.0, HUGE_VAL, -HUGE_VAL, 0, true, 0.0};
}

// First pass over element j.
TFMIA_HD void prob_accumulate(ProbRow& r, double p, std::int64_t j, std::int64_t y) {
    r.finite = r.finite && is_finite(p);
    r.sum += p;
    r.entropy += entropy_term(p);
    if (j != y) {
        r.sum_noty += p;
        r.mentr_noty += mentr_term(p);
    }
    r.min = p < r.min ? p : r.min;
    if (p > r.max) {
        r.max = p;
        r.argmax = j;
    }
}

// Combines partial rows over disjoint column sets.
TFMIA_HD void prob_merge(ProbRow& r, const ProbRow& o) {
    r.finite = r.finite && o.finite;
    r.sum += o.sum;
    r.sum_noty += o.sum_noty;
    r.entropy += o.entropy;
    r.mentr_noty += o.mentr_noty;
    r.min = o.min < r.min ? o.min : r.min;
    if (o.max > r.max || (o.max == r.max && o.argmax < r.argmax)) {
        r.max = o.max;
        r.argmax = o.argmax;
    }
    r.sq_dev += o.sq_dev;
}

TFMIA_HD Status prob_status(const ProbRow& r, double sum_tol) {
    if (!r.finite) return kNonFinite;
    if (r.min < 0.0) return kNegative;
    if (sum_tol >= 0.0 && !(std::fabs(r.sum - 1.0) <= sum_tol)) return kBadSum;
    return kOk;
}

TFMIA_HD Values prob_values(const ProbRow& r, double p_y, std::int64_t c, std::int64_t y) {
    Values v;
    v.loss = -vm::log(vm::at_least(p_y, kFloor));
    v.confidence = p_y;
    v.max = r.max;
    v.sd = std::sqrt(r.sq_dev / static_cast<double>(c));
    v.entropy = r.entropy;
    v.modified_entropy = (1.0 - p_y) * v.loss + r.mentr_noty;
    v.correct = r.argmax == y;
    v.logit_confidence = vm::log(p_y + kLiraEps) - vm::log(r.sum_noty + kLiraEps);
    return v;
}

// ---- logits ----------------------------------------------------------------

struct LogitRow {
    // pass 1 over z
    double max, max_noty;  // m = max_i z_i, max_{j != y} z_j
    std::int64_t argmax;   // a, first index of m
    bool finite;
    // pass 2 over e_i = exp(z_i - m)
    double s, s_noty, s_nota;  // sum_i e_i, sum_{i != y} e_i, sum_{i != a} e_i
    // pass 3 over p_i = e_i / S
    double sum_p, entropy, mentr_rest;  // mentr_rest: sum over i not in {y, a}
    // pass 4
    double sq_dev;
    // only when needs_shifted_sum(): sum_{j != y} exp(z_j - max_noty)
    double s_noty_shifted;
};

TFMIA_HD LogitRow logit_row_init() {
    return LogitRow{-HUGE_VAL, -HUGE_VAL, 0, true, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
}

TFMIA_HD void logit_accumulate_max(LogitRow& r, double z, std::int64_t j, std::int64_t y) {
    r.finite = r.finite && is_finite(z);
    if (z > r.max) {
        r.max = z;
        r.argmax = j;
    }
    if (j != y && z > r.max_noty) r.max_noty = z;
}

TFMIA_HD void logit_merge_max(LogitRow& r, const LogitRow& o) {
    r.finite = r.finite && o.finite;
    if (o.max > r.max || (o.max == r.max && o.argmax < r.argmax)) {
        r.max = o.max;
        r.argmax = o.argmax;
    }
    r.max_noty = o.max_noty > r.max_noty ? o.max_noty : r.max_noty;
}

TFMIA_HD void logit_accumulate_exp(LogitRow& r, double e, std::int64_t j, std::int64_t y) {
    r.s += e;
    if (j != y) r.s_noty += e;
    if (j != r.argmax) r.s_nota += e;
}

// Pass 3 over p = e / S; gap = m - z_j.
TFMIA_HD void logit_accumulate_prob(LogitRow& r, double p, double gap, double log_s, std::int64_t j,
                                    std::int64_t y) {
    r.sum_p += p;
    r.entropy += p * (gap + log_s);
    if (j != y && j != r.argmax) r.mentr_rest += mentr_term(p);
}

TFMIA_HD bool needs_shifted_sum(const LogitRow& r, std::int64_t y) {
    return r.argmax == y && r.max - r.max_noty > kUnderflowMargin;
}

// log S = log1p(S - 1), S - 1 = sum_{i != a} e_i exactly: keeps a loss of 1e-20 from rounding to 0.
TFMIA_HD double logit_log_s(const LogitRow& r) { return vm::log1p(r.s_nota); }

TFMIA_HD Values logit_values(const LogitRow& r, double z_y, double e_y, std::int64_t c, std::int64_t y) {
    const double log_s = logit_log_s(r);
    const double inv_s = 1.0 / r.s;
    Values v;
    v.loss = (r.max - z_y) + log_s;
    v.confidence = e_y * inv_s;
    v.max = inv_s;
    v.sd = std::sqrt(r.sq_dev / static_cast<double>(c));
    v.entropy = r.entropy;
    v.correct = r.argmax == y;
    const double one_minus_py = v.correct ? r.s_noty * inv_s : 1.0 - v.confidence;
    double mentr = one_minus_py * vm::at_most(v.loss, kNegLogFloor) + r.mentr_rest;
    if (!v.correct) {
        // p_a = 1 / S; -log(max(1 - p_a, 1e-30)) = log S - log(max(sum_{j != a} e_j, 1e-30 S))
        mentr += inv_s * (log_s - vm::log(vm::at_least(r.s_nota, kFloor * r.s)));
    }
    v.modified_entropy = mentr;
    v.logit_confidence = needs_shifted_sum(r, y) ? (r.max - r.max_noty) - vm::log(r.s_noty_shifted)
                                                 : (z_y - r.max) - vm::log(r.s_noty);
    return v;
}

}  // namespace tfmia::signals
