// Formulas of the fused per-sample signals, shared by the CPU kernel
// (signals.cpp) and the CUDA kernel (cuda/signals.cu).
//
// Everything is a template over the lane type D:
//   * the CPU runs D = simd::vdouble with one ROW per lane (a group of rows at
//     a time, a column per step), so no horizontal reductions are needed;
//   * the GPU runs D = double, one element per thread of a warp, and combines
//     the warp's partial rows itself.
// Both accumulate with the same functions and finish with the same functions.
// With p the softmax row, C classes, label y and L30 = -log(1e-30):
//
// From probabilities (Song & Mittal's reference, every log argument floored at 1e-30):
//   loss             = -log(max(p_y, 1e-30))
//   confidence       = p_y
//   max              = max_i p_i
//   sd               = sqrt(sum_i (p_i - mean)^2 / C)
//   entropy          = sum_i p_i * -log(max(p_i, 1e-30))
//   modified_entropy = (1 - p_y) * -log(max(p_y, 1e-30))
//                      + sum_{i != y} p_i * -log(max(1 - p_i, 1e-30))
//                      where log(1 - p_i) is accurate for small p_i (no cancellation);
//                      in reference mode it is log(max(fl(1 - p_i), 1e-30)), the log
//                      of 1 - p_i rounded to double first, as the reference code
//                      computes it (0 for p_i <= 2^-54)
//   correct          = first argmax == y
//   logit_confidence = log(p_y + 1e-45) - log(sum_{j != y} p_j + 1e-45)   (Carlini et al.)
//
// From logits z (m = max z, a = first argmax, e_i = exp(z_i - m), S = sum_i e_i,
// lse = m + log S, and log S = log1p(sum_{i != a} e_i) since e_a = 1):
//   loss             = lse - z_y = (m - z_y) + log S          (unfloored, as Keras)
//   confidence       = e_y / S,  max = 1 / S,  sd over p_i = e_i / S
//   entropy          = sum_i p_i ((m - z_i) + log S) = sum_i e_i (m - z_i) / S + log S
//   modified_entropy = (1 - p_y) min(lse - z_y, L30) + sum_{i != y} p_i min(-log(1 - p_i), L30)
//                      where 1 - p_a = sum_{j != a} e_j / S for the argmax a (no
//                      cancellation) and -log(1 - p_i) = -log1p(-p_i) otherwise (p_i <= 1/2)
//   logit_confidence = z_y - logsumexp_{j != y} z_j, shifted by max_{j != y} z_j when
//                      exp(z_j - m) would underflow (y the argmax by a margin > 600)
#pragma once

#include <cstdint>

#include "vecmath.hpp"

namespace tfmia::signals {

using vm::IndexOf;
using vm::MaskOf;

constexpr double kFloor = 1e-30;
constexpr double kNegLogFloor = 69.07755278982137;  // -log(1e-30)
constexpr double kLiraEps = 1e-45;
constexpr double kMaxFinite = 1.7976931348623157e308;
// When y is the argmax and every other logit is more than this below it,
// sum_{j != y} exp(z_j - m) could underflow; logit_confidence then re-sums with
// the shift max_{j != y} z_j.  Below the margin the largest term is >= e^-600,
// a normal double, and the terms that underflow are below its rounding error.
constexpr double kUnderflowMargin = 600.0;

template <class D>
struct Values {
    D loss, confidence, max, sd, entropy, modified_entropy, logit_confidence;
    MaskOf<D> correct;
};

// ---- per-element terms -------------------------------------------------------

// The two log terms of a probability p: p * -log(max(p, 1e-30)) for the
// entropy and p * -log(max(1 - p, 1e-30)) for the modified entropy, the
// latter from p exactly or, in reference mode, from 1 - p rounded to double.
template <class D>
TFMIA_HD void prob_log_terms(const D& p, bool reference, D& entropy_term, D& mentr_term) {
    D log_p, log1m_p;
    if (reference)
        vm::log_pair(vm::at_least(p, kFloor), vm::at_least(1.0 - p, kFloor), log_p, log1m_p);
    else
        vm::log_and_log1m(vm::at_least(p, kFloor), p, kFloor, log_p, log1m_p);
    entropy_term = p * -log_p;
    mentr_term = p * -log1m_p;
}

// p * -log(1 - p) for a class other than the argmax (p <= 1/2, so the 1e-30
// floor never applies); meaningless for p > 1/2, which callers mask out.
template <class D>
TFMIA_HD D other_mentr_term(const D& p) {
    return p * -vm::log1m_half(p);
}

// ---- probabilities -----------------------------------------------------------

template <class D>
struct ProbRow {
    D sum, sum_noty, entropy, mentr_noty;  // sum_noty, mentr_noty: over i != y
    D max;
    IndexOf<D> argmax;  // first index of max
    MaskOf<D> valid;    // every p finite and >= 0
    D sq_dev;           // second pass: sum (p_i - mean)^2
};

template <class D>
TFMIA_HD ProbRow<D> prob_row_init() {
    ProbRow<D> r{};
    r.max = D{} - HUGE_VAL;
    r.valid = vm::Lanes<D>::all_true();
    return r;
}

// First pass, column j (reference: see prob_log_terms).
template <class D>
TFMIA_HD void prob_accumulate(ProbRow<D>& r, const D& p, const IndexOf<D>& j, const IndexOf<D>& y, bool reference) {
    r.valid = r.valid & (p >= 0.0) & (p <= kMaxFinite);
    D entropy_term, mentr_term;
    prob_log_terms(p, reference, entropy_term, mentr_term);
    r.sum += p;
    r.entropy += entropy_term;
    const auto other = j != y;
    r.sum_noty += other ? p : D{};
    r.mentr_noty += other ? mentr_term : D{};
    const auto above = p > r.max;
    r.argmax = above ? j : r.argmax;
    r.max = above ? p : r.max;
}

// Second pass: the squared deviation of one value from the row mean.
template <class D>
TFMIA_HD void accumulate_sq_dev(D& sq_dev, const D& p, const D& mean) {
    const D d = p - mean;
    sq_dev += d * d;
}

// Whether the row passes validation: finite, non-negative and, unless
// sum_tol < 0, summing to 1 within sum_tol.
template <class D>
TFMIA_HD MaskOf<D> prob_ok(const ProbRow<D>& r, double sum_tol) {
    if (sum_tol < 0.0) return r.valid;
    return r.valid & (vm::abs(r.sum - 1.0) <= sum_tol);
}

template <class D>
TFMIA_HD Values<D> prob_values(const ProbRow<D>& r, const D& p_y, std::int64_t c, const IndexOf<D>& y) {
    Values<D> v;
    v.loss = -vm::log(vm::at_least(p_y, kFloor));
    v.confidence = p_y;
    v.max = r.max;
    v.sd = vm::Lanes<D>::sqrt(r.sq_dev / static_cast<double>(c));
    v.entropy = r.entropy;
    v.modified_entropy = (1.0 - p_y) * v.loss + r.mentr_noty;
    v.correct = r.argmax == y;
    v.logit_confidence = vm::log(p_y + kLiraEps) - vm::log(r.sum_noty + kLiraEps);
    return v;
}

// ---- logits ------------------------------------------------------------------

template <class D>
struct LogitRow {
    // pass 1 over z
    D max, max_noty;    // m = max_j z_j, max_{j != y} z_j
    IndexOf<D> argmax;  // a, first index of m
    MaskOf<D> finite;
    // pass 2 over e_j = exp(z_j - m)
    D s, s_noty, s_nota;  // sum_j e_j, sum_{j != y} e_j, sum_{j != a} e_j
    D e_gap;              // sum_j e_j (m - z_j): entropy = e_gap / S + log S
    // pass 3 over p_j = e_j / S
    D mentr_rest;   // sum over j not in {y, a} of p_j * -log(1 - p_j)
    D sum_p, sq_k;  // sum_j p_j and sum_j (p_j - 1/C)^2, for the variance
    // only where needs_shifted_sum(): sum_{j != y} exp(z_j - max_noty)
    D s_noty_shifted;
};

template <class D>
TFMIA_HD LogitRow<D> logit_row_init() {
    LogitRow<D> r{};
    r.max = D{} - HUGE_VAL;
    r.max_noty = r.max;
    r.finite = vm::Lanes<D>::all_true();
    return r;
}

template <class D>
TFMIA_HD void logit_accumulate_max(LogitRow<D>& r, const D& z, const IndexOf<D>& j, const IndexOf<D>& y) {
    r.finite = r.finite & (vm::abs(z) <= kMaxFinite);
    const auto above = z > r.max;
    r.argmax = above ? j : r.argmax;
    r.max = above ? z : r.max;
    r.max_noty = ((j != y) & (z > r.max_noty)) ? z : r.max_noty;
}

// e_j = exp(z_j - m), once pass 1 has found m.
template <class D>
TFMIA_HD D logit_exp(const LogitRow<D>& r, const D& z) {
    return vm::exp(z - r.max);
}

// Pass 2, column j: returns e_j.  The gap m - z_j is capped at 1000, beyond
// which e_j = 0 anyway, so that logits spanning more than the double range add
// 0 rather than 0 * inf.
template <class D>
TFMIA_HD D logit_accumulate_exp(LogitRow<D>& r, const D& z, const IndexOf<D>& j, const IndexOf<D>& y) {
    const D gap = r.max - z;
    const D e = logit_exp(r, z);
    r.s += e;
    r.s_noty += j != y ? e : D{};
    r.s_nota += j != r.argmax ? e : D{};
    r.e_gap += e * vm::at_most(gap, 1000.0);
    return e;
}

// Pass 3, column j, p = e_j / S; k = 1/C shifts the squares (the p sum to 1
// within rounding, so their mean is k to a few ulps and the shifted sum loses
// nothing; see logit_values).
template <class D>
TFMIA_HD void logit_accumulate_prob(LogitRow<D>& r, const D& p, double k, const IndexOf<D>& j, const IndexOf<D>& y) {
    r.mentr_rest += ((j != y) & (j != r.argmax)) ? other_mentr_term(p) : D{};
    r.sum_p += p;
    const D d = p - k;
    r.sq_k += d * d;
}

template <class D>
TFMIA_HD MaskOf<D> needs_shifted_sum(const LogitRow<D>& r, const IndexOf<D>& y) {
    return (r.argmax == y) & (r.max - r.max_noty > kUnderflowMargin);
}

// Only where needs_shifted_sum(), column j.
template <class D>
TFMIA_HD void logit_accumulate_shifted(LogitRow<D>& r, const D& z, const IndexOf<D>& j, const IndexOf<D>& y) {
    r.s_noty_shifted += j != y ? vm::exp(z - r.max_noty) : D{};
}

// log S = log1p(S - 1), S - 1 = sum_{j != a} e_j exactly: keeps a loss of 1e-20 from rounding to 0.
template <class D>
TFMIA_HD D logit_log_s(const LogitRow<D>& r) {
    return vm::log1p(r.s_nota);
}

template <class D>
TFMIA_HD Values<D> logit_values(const LogitRow<D>& r, const D& z_y, const D& e_y, std::int64_t c,
                                const IndexOf<D>& y) {
    const D log_s = logit_log_s(r);
    const D inv_s = 1.0 / r.s;
    const double cd = static_cast<double>(c);
    Values<D> v;
    v.loss = (r.max - z_y) + log_s;
    v.confidence = e_y * inv_s;
    v.max = inv_s;
    // sum (p - mean)^2 = sum (p - k)^2 - C (mean - k)^2 exactly; |mean - k| is a few ulps.
    const D mean_minus_k = r.sum_p / cd - 1.0 / cd;
    v.sd = vm::Lanes<D>::sqrt(vm::at_least(r.sq_k / cd - mean_minus_k * mean_minus_k, 0.0));
    v.entropy = r.e_gap * inv_s + log_s;
    v.correct = r.argmax == y;
    const D one_minus_py = v.correct ? r.s_noty * inv_s : 1.0 - v.confidence;
    // For a != y, p_a = 1 / S and -log(max(1 - p_a, 1e-30)) = log S - log(max(sum_{j != a} e_j, 1e-30 S)).
    const D argmax_term = inv_s * (log_s - vm::log(vm::max(r.s_nota, kFloor * r.s)));
    v.modified_entropy =
        one_minus_py * vm::at_most(v.loss, kNegLogFloor) + r.mentr_rest + (v.correct ? D{} : argmax_term);
    v.logit_confidence = needs_shifted_sum(r, y) ? (r.max - r.max_noty) - vm::log(r.s_noty_shifted)
                                                 : (z_y - r.max) - vm::log(r.s_noty);
    return v;
}

}  // namespace tfmia::signals
