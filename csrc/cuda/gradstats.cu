// CUDA kernel of the gradient-statistics segments: one warp per (row,
// segment).  Each lane summarises every 32nd element of the segment with the
// CPU's two-pass scheme (moments.hpp: centred_moments), and the lanes' summaries
// are merged in a shuffle tree with the same pairwise formulas.  The host
// merges the segments into the state exactly as on the CPU (gradstats.cpp).
#include <algorithm>

#include "cuda/rows.hpp"
#include "cuda/rows_device.hpp"

namespace tfmia::cuda {

namespace {

constexpr int kBlock = 256;  // 8 segments per block

using gradstats::Moments;

__device__ Moments shuffle_down(const Moments& m, int offset) {
    Moments o;
    o.n = __shfl_down_sync(kFullMask, m.n, offset);
    o.exponent = __shfl_down_sync(kFullMask, m.exponent, offset);
    o.mean = __shfl_down_sync(kFullMask, m.mean, offset);
    o.mean_lo = __shfl_down_sync(kFullMask, m.mean_lo, offset);
    o.m2 = __shfl_down_sync(kFullMask, m.m2, offset);
    o.m3 = __shfl_down_sync(kFullMask, m.m3, offset);
    o.m4 = __shfl_down_sync(kFullMask, m.m4, offset);
    o.l1 = __shfl_down_sync(kFullMask, m.l1, offset);
    o.l2sq = __shfl_down_sync(kFullMask, m.l2sq, offset);
    o.min_abs = __shfl_down_sync(kFullMask, m.min_abs, offset);
    o.max_abs = __shfl_down_sync(kFullMask, m.max_abs, offset);
    return o;
}

// Rows [0, n) of a batch starting at row0 of the chunk.
template <class T>
__global__ void segment_kernel(const T* chunk, std::int64_t n, std::int64_t p, std::int64_t segments,
                               std::int64_t seg_len, Moments* partials, std::int64_t row0,
                               unsigned long long* first_bad) {
    const std::int64_t item = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
    const int lane = static_cast<int>(threadIdx.x % kWarp);
    if (item >= n * segments) return;  // whole warps
    const std::int64_t row = item / segments, start = (item % segments) * seg_len;
    const std::int64_t len = seg_len < p - start ? seg_len : p - start;
    const T* x = chunk + row * p + start;

    double sum = 0.0, l1 = 0.0, l2sq = 0.0, min_abs = HUGE_VAL, max_abs = 0.0;
    bool finite = true;
    std::int64_t count = 0;
    for (std::int64_t j = lane; j < len; j += kWarp, ++count) {
        const double v = static_cast<double>(x[j]);
        const double a = fabs(v);
        finite = finite && a <= 1.7976931348623157e308;
        sum += v;
        l1 += a;
        l2sq += v * v;
        min_abs = a < min_abs ? a : min_abs;
        max_abs = a > max_abs ? a : max_abs;
    }
    if (!warp_all(finite)) {
        if (lane == 0) report_bad(first_bad, row0 + row);
        return;
    }
    Moments m = gradstats::empty_moments();
    if (count > 0) {
        // The lane's scale 2^e, as block_moments on the CPU (row_kernels_impl.hpp).
        const int e = gradstats::scale_exponent(max_abs);
        const double scale = e == gradstats::kZeroExponent ? 1.0 : ldexp(1.0, -e);
        if (e >= -gradstats::kPlainRange && e <= gradstats::kPlainRange) {
            sum *= scale;
            l1 *= scale;
            l2sq *= scale * scale;
        } else {
            sum = l1 = l2sq = 0.0;
            for (std::int64_t j = lane; j < len; j += kWarp) {
                const double v = static_cast<double>(x[j]) * scale;
                sum += v;
                l1 += fabs(v);
                l2sq += v * v;
            }
        }
        const double shift = sum / static_cast<double>(count);
        double sd = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
        for (std::int64_t j = lane; j < len; j += kWarp) {
            const double d = static_cast<double>(x[j]) * scale - shift;
            const double d2 = d * d;
            sd += d;
            s2 += d2;
            s3 += d2 * d;
            s4 += d2 * d2;
        }
        m = gradstats::centred_moments(static_cast<double>(count), e, shift, sd, s2, s3, s4, l1, l2sq, min_abs,
                                       max_abs);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const Moments other = shuffle_down(m, offset);
        if (lane < offset) m = gradstats::merge(m, other);
    }
    if (lane == 0) partials[item] = m;
}

}  // namespace

template <class T>
std::int64_t segment_moments(const T* chunk, std::int64_t n, std::int64_t p, std::int64_t segments,
                             Moments* partials) {
    const std::int64_t batch = rows_per_batch(n, static_cast<std::size_t>(p) * sizeof(T));
    const std::int64_t seg_len = (p + segments - 1) / segments;
    DeviceBuffer<T> data(static_cast<std::size_t>(batch * p));
    DeviceBuffer<Moments> parts(static_cast<std::size_t>(batch * segments));
    DeviceBuffer<unsigned long long> first_bad(1);
    const unsigned long long none = ~0ULL;
    first_bad.upload(&none, 1);
    for (std::int64_t row0 = 0; row0 < n; row0 += batch) {
        const std::int64_t rows = std::min(batch, n - row0);
        data.upload(chunk + row0 * p, static_cast<std::size_t>(rows * p));
        segment_kernel<T><<<blocks_for(rows * segments * kWarp, kBlock), kBlock>>>(
            data.get(), rows, p, segments, seg_len, parts.get(), row0, first_bad.get());
        check_launch("gradient statistics kernel");
        parts.download(partials + row0 * segments, static_cast<std::size_t>(rows * segments));
    }
    unsigned long long bad;
    first_bad.download(&bad, 1);
    return first_bad_or_none(bad);
}

template std::int64_t segment_moments<float>(const float*, std::int64_t, std::int64_t, std::int64_t, Moments*);
template std::int64_t segment_moments<double>(const double*, std::int64_t, std::int64_t, std::int64_t, Moments*);

}  // namespace tfmia::cuda
