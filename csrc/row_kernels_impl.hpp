// Implementation of the CPU row kernels on simd::vdouble lanes.
//
// Included by exactly the rows_isa*.cpp files, each after choosing its target
// instruction set (see row_kernels.hpp), so that this code and the vecmath /
// simd / signals_row templates it instantiates are compiled for that set.  The
// kernels have internal linkage and the helpers are always inlined, so the
// copies for different instruction sets never mix at link time.  The standard
// headers come in through row_kernels.hpp, before the target switch.
#pragma once

#include "moments.hpp"
#include "row_kernels.hpp"
#include "signals_row.hpp"
#include "simd.hpp"

namespace tfmia {
namespace {

using simd::kWidth;
using simd::vdouble;
using simd::vint;

// ---- fused signals: one row per lane ------------------------------------------------
//
// A group of kWidth rows is transposed once into a C x kWidth scratch block (in
// cache); every pass then walks its columns, one vector per column, and the
// rows of the group are finished together, with no horizontal reductions.

// x[j * kWidth + l] = preds[r0 + l][j] for the `count` rows from r0; lanes past
// the last row repeat it (their results are computed and dropped).  Whole
// kWidth x kWidth tiles go through vector transposes, the last columns one by one.
template <class T>
TFMIA_HD void load_rows(const T* preds, std::int64_t c, std::int64_t r0, std::int64_t count, double* x) {
    const T* rows[kWidth];
    for (int l = 0; l < kWidth; ++l) rows[l] = preds + (r0 + std::min<std::int64_t>(l, count - 1)) * c;
    std::int64_t j = 0;
    for (; j + kWidth <= c; j += kWidth) {
        vdouble tile[kWidth];
        for (int l = 0; l < kWidth; ++l) tile[l] = simd::load(rows[l] + j);
        simd::transpose(tile);
        for (int k = 0; k < kWidth; ++k) simd::store(x + (j + k) * kWidth, tile[k]);
    }
    for (; j < c; ++j)
        for (int l = 0; l < kWidth; ++l) x[j * kWidth + l] = static_cast<double>(rows[l][j]);
}

TFMIA_HD vint load_labels(const std::int64_t* labels, std::int64_t r0, std::int64_t count) {
    vint y;
    for (int l = 0; l < kWidth; ++l) y[l] = labels[r0 + std::min<std::int64_t>(l, count - 1)];
    return y;
}

// Lane l of the result is x[y[l] * kWidth + l]: each row's entry at its label.
TFMIA_HD vdouble at_labels(const double* x, const vint& y) {
    vdouble v;
    for (int l = 0; l < kWidth; ++l) v[l] = x[y[l] * kWidth + l];
    return v;
}

// r0 + the first lane below count where ok is false, or -1.
TFMIA_HD std::int64_t first_failed(const vint& ok, std::int64_t r0, std::int64_t count) {
    for (int l = 0; l < count; ++l)
        if (!ok[l]) return r0 + l;
    return -1;
}

template <class T>
TFMIA_HD void store_lanes(const SignalsOutputs<T>& out, std::int64_t r0, std::int64_t count,
                          const signals::Values<vdouble>& v) {
    for (int l = 0; l < count; ++l) {
        const std::int64_t i = r0 + l;
        out.loss[i] = static_cast<T>(v.loss[l]);
        out.confidence[i] = static_cast<T>(v.confidence[l]);
        out.max[i] = static_cast<T>(v.max[l]);
        out.sd[i] = static_cast<T>(v.sd[l]);
        out.entropy[i] = static_cast<T>(v.entropy[l]);
        out.modified_entropy[i] = static_cast<T>(v.modified_entropy[l]);
        out.correct[i] = v.correct[l] != 0;
        out.logit_confidence[i] = static_cast<T>(v.logit_confidence[l]);
    }
}

// One group of up to kWidth probability rows (x: kWidth c doubles).  Returns the
// first invalid row of the group, or -1.
template <class T>
std::int64_t prob_group(const SignalsArgs<T>& a, std::int64_t r0, std::int64_t count, double* x) {
    using namespace signals;
    const std::int64_t c = a.c;
    load_rows(a.preds, c, r0, count, x);
    const vint y = load_labels(a.labels, r0, count);
    ProbRow<vdouble> r = prob_row_init<vdouble>();
    for (std::int64_t j = 0; j < c; ++j)
        prob_accumulate(r, simd::load(x + j * kWidth), simd::splat(j), y, a.reference);
    const std::int64_t bad = first_failed(prob_ok(r, a.sum_tol), r0, count);
    if (bad >= 0) return bad;
    const vdouble mean = r.sum / static_cast<double>(c);
    for (std::int64_t j = 0; j < c; ++j) accumulate_sq_dev(r.sq_dev, simd::load(x + j * kWidth), mean);
    store_lanes(a.out, r0, count, prob_values(r, at_labels(x, y), c, y));
    return -1;
}

// One group of up to kWidth logit rows (x: the transposed logits, e: exp(z - m)
// in the same layout, kWidth c doubles each).  Returns the first invalid row, or -1.
template <class T>
std::int64_t logit_group(const SignalsArgs<T>& a, std::int64_t r0, std::int64_t count, double* x, double* e) {
    using namespace signals;
    const std::int64_t c = a.c;
    load_rows(a.preds, c, r0, count, x);
    const vint y = load_labels(a.labels, r0, count);
    LogitRow<vdouble> r = logit_row_init<vdouble>();
    for (std::int64_t j = 0; j < c; ++j) logit_accumulate_max(r, simd::load(x + j * kWidth), simd::splat(j), y);
    const std::int64_t bad = first_failed(r.finite, r0, count);
    if (bad >= 0) return bad;
    for (std::int64_t j = 0; j < c; ++j)
        simd::store(e + j * kWidth, logit_accumulate_exp(r, simd::load(x + j * kWidth), simd::splat(j), y));
    const vdouble inv_s = 1.0 / r.s;
    const double k = 1.0 / static_cast<double>(c);
    for (std::int64_t j = 0; j < c; ++j)
        logit_accumulate_prob(r, simd::load(e + j * kWidth) * inv_s, k, simd::splat(j), y);
    if (simd::any(needs_shifted_sum(r, y)))  // rare: some row's other logits all > 600 below its label's
        for (std::int64_t j = 0; j < c; ++j)
            logit_accumulate_shifted(r, simd::load(x + j * kWidth), simd::splat(j), y);
    store_lanes(a.out, r0, count, logit_values(r, at_labels(x, y), at_labels(e, y), c, y));
    return -1;
}

// Rows [begin, end) in groups of kWidth; scratch: signals_scratch(c) doubles.
template <class T>
std::int64_t signals_rows(const SignalsArgs<T>& a, std::int64_t begin, std::int64_t end, double* scratch) {
    for (std::int64_t r0 = begin; r0 < end; r0 += kWidth) {
        const std::int64_t count = std::min<std::int64_t>(kWidth, end - r0);
        const std::int64_t bad = a.from_logits ? logit_group(a, r0, count, scratch, scratch + a.c * kWidth)
                                               : prob_group(a, r0, count, scratch);
        if (bad >= 0) return bad;
    }
    return -1;
}

// ---- gradient statistics: summary of a stretch of values ---------------------------
//
// Blocks of kBlock values (in L1) are scanned twice, around the block's own
// mean, and merged in order with the pairwise formulas of moments.hpp.  The
// first pass also finds max |x|, which sets the block's scale 2^e: within
// 2^+-kPlainRange its sums are taken unscaled and rescaled (exact), beyond
// it the first pass is redone on x 2^-e (rare: huge or tiny gradients).  The
// last vector of a block is padded with 0: it adds nothing to the first
// pass's sums (its |x| is masked out of the minimum), and its deviations are
// masked to 0 in the second.

constexpr std::int64_t kBlock = 2048;

template <class T>
TFMIA_HD vdouble load_padded(const T* x, std::int64_t j, std::int64_t len, double pad) {
    if (j + kWidth <= len) return simd::load(x + j);
    vdouble v = vdouble{} + pad;
    for (std::int64_t i = 0; j + i < len; ++i) v[i] = static_cast<double>(x[j + i]);
    return v;
}

// sum, sum |y| and sum y^2 of y = x * scale.
template <class T>
TFMIA_HD void scaled_sums(const T* x, std::int64_t len, double scale, double& sum, double& l1, double& l2sq) {
    vdouble vsum{}, vl1{}, vl2sq{};
    for (std::int64_t j = 0; j < len; j += kWidth) {
        const vdouble v = load_padded(x, j, len, 0.0) * scale;
        vsum += v;
        vl1 += vm::abs(v);
        vl2sq += v * v;
    }
    sum = simd::sum(vsum);
    l1 = simd::sum(vl1);
    l2sq = simd::sum(vl2sq);
}

template <class T>
TFMIA_HD bool block_moments(const T* x, std::int64_t len, gradstats::Moments& out) {
    vdouble sum{}, l1{}, l2sq{}, max_abs{}, min_abs = vdouble{} + HUGE_VAL;
    vint finite = ~vint{};
    for (std::int64_t j = 0; j < len; j += kWidth) {
        const vdouble v = load_padded(x, j, len, 0.0);
        const vdouble a = vm::abs(v);
        finite &= a <= signals::kMaxFinite;
        sum += v;
        l1 += a;
        l2sq += v * v;
        max_abs = a > max_abs ? a : max_abs;
        const vdouble in_block = simd::iota(j) < len ? a : HUGE_VAL;
        min_abs = in_block < min_abs ? in_block : min_abs;
    }
    if (simd::any(~finite)) return false;
    double lo = min_abs[0], hi = max_abs[0];
    for (int l = 1; l < kWidth; ++l) {
        lo = min_abs[l] < lo ? min_abs[l] : lo;
        hi = max_abs[l] > hi ? max_abs[l] : hi;
    }
    const int e = gradstats::scale_exponent(hi);
    const double scale = e == gradstats::kZeroExponent ? 1.0 : ldexp(1.0, -e);
    double sum_y, l1_y, l2sq_y;
    if (e >= -gradstats::kPlainRange && e <= gradstats::kPlainRange) {
        sum_y = simd::sum(sum) * scale;
        l1_y = simd::sum(l1) * scale;
        l2sq_y = simd::sum(l2sq) * scale * scale;
    } else {
        scaled_sums(x, len, scale, sum_y, l1_y, l2sq_y);
    }
    const double n = static_cast<double>(len);
    const double shift = sum_y / n;
    vdouble sd{}, s2{}, s3{}, s4{};
    auto add = [&](const vdouble& d) {
        const vdouble d2 = d * d;
        sd += d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    };
    const std::int64_t whole = len - len % kWidth;
    for (std::int64_t j = 0; j < whole; j += kWidth) add(simd::load(x + j) * scale - shift);
    if (whole < len) {
        const vdouble d = load_padded(x, whole, len, 0.0) * scale - shift;
        add(simd::iota(whole) < len ? d : 0.0);
    }
    out = gradstats::centred_moments(n, e, shift, simd::sum(sd), simd::sum(s2), simd::sum(s3), simd::sum(s4), l1_y,
                                     l2sq_y, lo, hi);
    return true;
}

template <class T>
bool moments_of(const T* x, std::int64_t len, gradstats::Moments& out) {
    gradstats::Moments acc = gradstats::empty_moments();
    for (std::int64_t start = 0; start < len; start += kBlock) {
        gradstats::Moments block;
        if (!block_moments(x + start, std::min(kBlock, len - start), block)) return false;
        acc = gradstats::merge(acc, block);
    }
    out = acc;
    return true;
}

// ---- testing hook ------------------------------------------------------------------

template <class D>
TFMIA_HD D vecmath_apply(VecmathFn fn, const D& x) {
    D log_x, log1m_x;
    switch (fn) {
        case VecmathFn::exp:
            return vm::exp(x);
        case VecmathFn::log:
            return vm::log(x);
        case VecmathFn::log1p:
            return vm::log1p(x);
        case VecmathFn::log1m:
            return vm::log1m(x, signals::kFloor);
        case VecmathFn::log1m_half:
            return vm::log1m_half(x);
        case VecmathFn::pair_log:
        case VecmathFn::pair_log1m:
            vm::log_and_log1m(x, x, signals::kFloor, log_x, log1m_x);
            return fn == VecmathFn::pair_log ? log_x : log1m_x;
    }
    return x;
}

void vecmath_lanes(VecmathFn fn, const double* x, double* y, std::int64_t n) {
    for (std::int64_t i = 0; i < n; i += kWidth) {
        const vdouble v = vecmath_apply(fn, load_padded(x, i, n, 1.0));
        for (int l = 0; l < kWidth && i + l < n; ++l) y[i + l] = v[l];
    }
}

constexpr RowKernels make_row_kernels(const char* isa) {
    return RowKernels{isa,           &signals_rows<float>, &signals_rows<double>, &moments_of<float>,
                      &moments_of<double>, &vecmath_lanes};
}

}  // namespace
}  // namespace tfmia
