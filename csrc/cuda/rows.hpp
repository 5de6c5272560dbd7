// Host entry points of the CUDA row kernels: fused signals, gradient-statistics
// segments and bisection steps.  Each takes host pointers, copies its inputs to
// the device (in row batches of at most ~256 MiB where the input can be large),
// runs, and copies the results back; CUDA failures are thrown as
// std::runtime_error.  Invalid data (NaN/Inf, bad rows) is reported the way the
// CPU kernels report it, as the first offending index.  The formulas are the
// CPU kernels' (signals_row.hpp, moments.hpp, bisection_row.hpp), so results
// agree up to summation order and FMA contraction.
//
// Compiled only with TFMIA_CUDA (callers test TFMIA_HAVE_CUDA).
#pragma once

#include <cstdint>

#include "bisection_row.hpp"
#include "moments.hpp"
#include "row_kernels.hpp"

namespace tfmia::cuda {

// Signals of every row of a (a.from_logits, a.sum_tol as on the CPU); returns
// the first invalid row, or -1.  Labels must already be in range.
template <class T>
std::int64_t signals(const SignalsArgs<T>& a);

// Summaries of the (row, segment) stretches of an (n, p) chunk, segments per
// row of ceil(p / segments) elements, into partials[row * segments + s];
// returns the first row holding NaN/Inf, or -1.
template <class T>
std::int64_t segment_moments(const T* chunk, std::int64_t n, std::int64_t p, std::int64_t segments,
                             gradstats::Moments* partials);

// One bisection step (see bisection.cpp): fills decisions[0 .. rec.k) and
// returns the first invalid queried record without changing anything, or -1
// after applying the step to the host arrays.
template <class T, class P>
std::int64_t bisection_step(const bisection::Records& rec, const bisection::Points<T>& pts, const P* probs,
                            std::int8_t* decisions);

}  // namespace tfmia::cuda
