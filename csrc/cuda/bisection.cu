// CUDA kernels of one bisection step (see bisection.cpp and bisection_row.hpp):
// one thread per queried record decides from its probabilities; then one block
// per queried record moves lo or hi and recomputes mid over its coordinates, or
// reduces ||mid - x0||^2 in shared memory.  The record arrays are copied in
// whole and back; the step is bound by those transfers, the CPU path by memory
// bandwidth, so this path exists for parity rather than speed.
#include <cmath>

#include "cuda/rows.hpp"
#include "cuda/rows_device.hpp"

namespace tfmia::cuda {

namespace {

constexpr int kDecideBlock = 256;
constexpr int kApplyBlock = 256;

using bisection::Decision;

template <class P>
__global__ void decide_kernel(const P* probs, std::int64_t k, std::int64_t c, const std::int64_t* rows,
                              const std::int64_t* orig, double theta, std::int8_t* decisions,
                              unsigned long long* first_bad) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= k) return;
    const Decision d = bisection::decide(probs + i * c, c, orig[rows[i]], theta);
    decisions[i] = d;
    if (d == bisection::kBadProbs || d == bisection::kBadClass) report_bad(first_bad, i);
}

// One block per queried record; device copies of the records' arrays.
template <class T>
__global__ void apply_kernel(bisection::Records rec, bisection::Points<T> pts, const std::int8_t* decisions) {
    __shared__ double partial[kApplyBlock];
    const std::int64_t i = blockIdx.x;
    const std::int64_t r = rec.rows[i], d = rec.d;
    const Decision decision = static_cast<Decision>(decisions[i]);
    T* mid = pts.mid + r * d;
    if (decision == bisection::kConverged) {
        const T* x0 = pts.x0 + r * d;
        double sq = 0.0;
        for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
            const double diff = static_cast<double>(mid[j]) - static_cast<double>(x0[j]);
            sq += diff * diff;
        }
        partial[threadIdx.x] = sq;
        __syncthreads();
        for (int half = kApplyBlock / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            rec.steps[r] += 1;
            rec.distance[r] = bisection::finish_distance(partial[0], mid, pts.x0 + r * d, d);
            rec.converged[r] = true;
            rec.active[r] = false;
        }
        return;
    }
    T* moved = (decision == bisection::kToLo ? pts.lo : pts.hi) + r * d;
    const T* other = (decision == bisection::kToLo ? pts.hi : pts.lo) + r * d;
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const T m = mid[j];
        moved[j] = m;
        mid[j] = bisection::midpoint(m, other[j]);
    }
    if (threadIdx.x == 0) {
        rec.steps[r] += 1;
        if (rec.steps[r] >= rec.max_steps) rec.active[r] = false;
    }
}

}  // namespace

template <class T, class P>
std::int64_t bisection_step(const bisection::Records& rec, const bisection::Points<T>& pts, const P* probs,
                            std::int8_t* decisions) {
    if (rec.k == 0) return -1;
    const std::size_t n = static_cast<std::size_t>(rec.n), k = static_cast<std::size_t>(rec.k);
    const std::size_t points = n * static_cast<std::size_t>(rec.d);
    DeviceBuffer<std::int64_t> rows(k), orig(n);
    DeviceBuffer<P> dprobs(k * static_cast<std::size_t>(rec.c));
    DeviceBuffer<std::int8_t> ddecisions(k);
    DeviceBuffer<unsigned long long> first_bad(1);
    const unsigned long long none = ~0ULL;
    first_bad.upload(&none, 1);
    rows.upload(rec.rows, k);
    orig.upload(rec.orig, n);
    dprobs.upload(probs, k * static_cast<std::size_t>(rec.c));
    decide_kernel<P><<<blocks_for(rec.k, kDecideBlock), kDecideBlock>>>(
        dprobs.get(), rec.k, rec.c, rows.get(), orig.get(), rec.theta, ddecisions.get(), first_bad.get());
    check_launch("bisection decide kernel");
    ddecisions.download(decisions, k);
    unsigned long long bad;
    first_bad.download(&bad, 1);
    if (bad != none) return first_bad_or_none(bad);

    DeviceBuffer<T> x0(points), lo(points), hi(points), mid(points);
    DeviceBuffer<bool> active(n), converged(n);
    DeviceBuffer<double> distance(n);
    DeviceBuffer<std::int64_t> steps(n);
    x0.upload(pts.x0, points);
    lo.upload(pts.lo, points);
    hi.upload(pts.hi, points);
    mid.upload(pts.mid, points);
    active.upload(rec.active, n);
    converged.upload(rec.converged, n);
    distance.upload(rec.distance, n);
    steps.upload(rec.steps, n);
    bisection::Records drec = rec;
    drec.rows = rows.get();
    drec.orig = orig.get();
    drec.active = active.get();
    drec.converged = converged.get();
    drec.distance = distance.get();
    drec.steps = steps.get();
    const bisection::Points<T> dpts{x0.get(), lo.get(), hi.get(), mid.get()};
    apply_kernel<T><<<static_cast<unsigned>(rec.k), kApplyBlock>>>(drec, dpts, ddecisions.get());
    check_launch("bisection apply kernel");
    lo.download(pts.lo, points);
    hi.download(pts.hi, points);
    mid.download(pts.mid, points);
    active.download(rec.active, n);
    converged.download(rec.converged, n);
    distance.download(rec.distance, n);
    steps.download(rec.steps, n);
    return -1;
}

template std::int64_t bisection_step<float, float>(const bisection::Records&, const bisection::Points<float>&,
                                                   const float*, std::int8_t*);
template std::int64_t bisection_step<float, double>(const bisection::Records&, const bisection::Points<float>&,
                                                    const double*, std::int8_t*);
template std::int64_t bisection_step<double, float>(const bisection::Records&, const bisection::Points<double>&,
                                                    const float*, std::int8_t*);
template std::int64_t bisection_step<double, double>(const bisection::Records&, const bisection::Points<double>&,
                                                     const double*, std::int8_t*);

}  // namespace tfmia::cuda
