// CUDA kernel of the fused per-sample signals: one warp per row, each lane
// taking every 32nd column (coalesced reads), partial rows combined with warp
// shuffles, and the row finished by lane 0 with the CPU's formulas
// (signals_row.hpp, D = double).  Passes re-read the row from L1/L2 instead of
// keeping exp(z - m) in scratch.
#include <algorithm>

#include "cuda/rows.hpp"
#include "cuda/rows_device.hpp"
#include "signals_row.hpp"

namespace tfmia::cuda {

namespace {

constexpr int kBlock = 256;  // 8 rows per block

using signals::LogitRow;
using signals::ProbRow;
using signals::Values;

template <class T>
__device__ void store_row(const SignalsOutputs<T>& out, std::int64_t i, const Values<double>& v) {
    out.loss[i] = static_cast<T>(v.loss);
    out.confidence[i] = static_cast<T>(v.confidence);
    out.max[i] = static_cast<T>(v.max);
    out.sd[i] = static_cast<T>(v.sd);
    out.entropy[i] = static_cast<T>(v.entropy);
    out.modified_entropy[i] = static_cast<T>(v.modified_entropy);
    out.correct[i] = v.correct;
    out.logit_confidence[i] = static_cast<T>(v.logit_confidence);
}

// Rows [0, n) of a batch whose first row is row0 of the whole array.
template <class T>
__global__ void prob_rows(const T* preds, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                          double sum_tol, bool reference, SignalsOutputs<T> out, std::int64_t row0,
                          unsigned long long* first_bad) {
    const std::int64_t row = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
    const int lane = static_cast<int>(threadIdx.x % kWarp);
    if (row >= n) return;  // whole warps: the row is the warp's
    const T* p = preds + row * c;
    const std::int64_t y = labels[row];
    ProbRow<double> r = signals::prob_row_init<double>();
    for (std::int64_t j = lane; j < c; j += kWarp)
        signals::prob_accumulate(r, static_cast<double>(p[j]), j, y, reference);
    r.sum = warp_sum(r.sum);
    r.sum_noty = warp_sum(r.sum_noty);
    r.entropy = warp_sum(r.entropy);
    r.mentr_noty = warp_sum(r.mentr_noty);
    warp_argmax(r.max, r.argmax);
    r.valid = warp_all(r.valid);
    if (!signals::prob_ok(r, sum_tol)) {
        if (lane == 0) report_bad(first_bad, row0 + row);
        return;
    }
    const double mean = r.sum / static_cast<double>(c);
    for (std::int64_t j = lane; j < c; j += kWarp)
        signals::accumulate_sq_dev(r.sq_dev, static_cast<double>(p[j]), mean);
    r.sq_dev = warp_sum(r.sq_dev);
    if (lane == 0) store_row(out, row, signals::prob_values(r, static_cast<double>(p[y]), c, y));
}

template <class T>
__global__ void logit_rows(const T* preds, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                           SignalsOutputs<T> out, std::int64_t row0, unsigned long long* first_bad) {
    const std::int64_t row = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
    const int lane = static_cast<int>(threadIdx.x % kWarp);
    if (row >= n) return;
    const T* z = preds + row * c;
    const std::int64_t y = labels[row];
    LogitRow<double> r = signals::logit_row_init<double>();
    for (std::int64_t j = lane; j < c; j += kWarp) signals::logit_accumulate_max(r, static_cast<double>(z[j]), j, y);
    warp_argmax(r.max, r.argmax);
    r.max_noty = warp_max(r.max_noty);
    r.finite = warp_all(r.finite);
    if (!r.finite) {
        if (lane == 0) report_bad(first_bad, row0 + row);
        return;
    }
    for (std::int64_t j = lane; j < c; j += kWarp) signals::logit_accumulate_exp(r, static_cast<double>(z[j]), j, y);
    r.s = warp_sum(r.s);
    r.s_noty = warp_sum(r.s_noty);
    r.s_nota = warp_sum(r.s_nota);
    r.e_gap = warp_sum(r.e_gap);
    const double inv_s = 1.0 / r.s;
    const double k = 1.0 / static_cast<double>(c);
    for (std::int64_t j = lane; j < c; j += kWarp)
        signals::logit_accumulate_prob(r, signals::logit_exp(r, static_cast<double>(z[j])) * inv_s, k, j, y);
    r.mentr_rest = warp_sum(r.mentr_rest);
    r.sum_p = warp_sum(r.sum_p);
    r.sq_k = warp_sum(r.sq_k);
    if (signals::needs_shifted_sum(r, y)) {  // the same on every lane: max and argmax are warp-wide
        for (std::int64_t j = lane; j < c; j += kWarp)
            signals::logit_accumulate_shifted(r, static_cast<double>(z[j]), j, y);
        r.s_noty_shifted = warp_sum(r.s_noty_shifted);
    }
    if (lane == 0) {
        const double z_y = static_cast<double>(z[y]);
        store_row(out, row, signals::logit_values(r, z_y, signals::logit_exp(r, z_y), c, y));
    }
}

}  // namespace

template <class T>
std::int64_t signals(const SignalsArgs<T>& a) {
    const std::int64_t batch = rows_per_batch(a.n, static_cast<std::size_t>(a.c) * sizeof(T));
    const std::size_t rows = static_cast<std::size_t>(batch);
    DeviceBuffer<T> preds(rows * static_cast<std::size_t>(a.c));
    DeviceBuffer<std::int64_t> labels(rows);
    DeviceBuffer<T> loss(rows), confidence(rows), max(rows), sd(rows), entropy(rows), modified_entropy(rows),
        logit_confidence(rows);
    DeviceBuffer<bool> correct(rows);
    DeviceBuffer<unsigned long long> first_bad(1);
    const unsigned long long none = ~0ULL;
    first_bad.upload(&none, 1);
    const SignalsOutputs<T> out{loss.get(),    confidence.get(),       max.get(),     sd.get(),
                                entropy.get(), modified_entropy.get(), correct.get(), logit_confidence.get()};
    for (std::int64_t row0 = 0; row0 < a.n; row0 += batch) {
        const std::int64_t n = std::min(batch, a.n - row0);
        const std::size_t count = static_cast<std::size_t>(n);
        preds.upload(a.preds + row0 * a.c, count * static_cast<std::size_t>(a.c));
        labels.upload(a.labels + row0, count);
        const unsigned blocks = blocks_for(n * kWarp, kBlock);
        if (a.from_logits)
            logit_rows<T><<<blocks, kBlock>>>(preds.get(), labels.get(), n, a.c, out, row0, first_bad.get());
        else
            prob_rows<T><<<blocks, kBlock>>>(preds.get(), labels.get(), n, a.c, a.sum_tol, a.reference, out, row0,
                                             first_bad.get());
        check_launch(a.from_logits ? "signals logit kernel" : "signals probability kernel");
        loss.download(a.out.loss + row0, count);
        confidence.download(a.out.confidence + row0, count);
        max.download(a.out.max + row0, count);
        sd.download(a.out.sd + row0, count);
        entropy.download(a.out.entropy + row0, count);
        modified_entropy.download(a.out.modified_entropy + row0, count);
        correct.download(a.out.correct + row0, count);
        logit_confidence.download(a.out.logit_confidence + row0, count);
    }
    unsigned long long bad;
    first_bad.download(&bad, 1);
    return first_bad_or_none(bad);
}

template std::int64_t signals<float>(const SignalsArgs<float>&);
template std::int64_t signals<double>(const SignalsArgs<double>&);

}  // namespace tfmia::cuda
