// Risk-score histograms and scores on the GPU.  Counting: each value's
// rank within its class comes from a stable sort by label, its slot from the
// shared per-value step (risk_kernels.hpp), and atomics fill the integer
// count tables that risk.cpp turns into histograms with the CPU code.
// Scoring: one thread per value, the reference's lookup and outward search,
// every floating-point step rounded on its own (no FMA contraction), so the
// scores are the CPU path's bit for bit.
#include <cuda_runtime.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <stdexcept>
#include <string>

#include "cuda/sorting.hpp"
#include "risk_kernels.hpp"

namespace tfmia::cuda {
namespace {

void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

constexpr int kThreads = 256;

unsigned grid(std::size_t n) {
    const std::size_t blocks = (n + kThreads - 1) / kThreads;
    return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

template <class T>
__device__ void count_one(unsigned long long* table, std::int64_t block, T value, const double* e, int bins,
                          bool floor) {
    const double v = static_cast<double>(risk::floored(value, floor));
    unsigned long long* counters = table + block * (bins + 1);
    const int slot = risk::histogram_slot(v, e, bins);
    if (slot < bins) atomicAdd(counters + slot, 1ULL);
    if (v <= e[bins]) atomicAdd(counters + bins, 1ULL);
}

// Sorted position p holds value order[p] of class label[p]; its rank in the
// class is p - class_start[label].
template <class T>
__global__ void count_classes(const T* values, const std::int64_t* label, const std::int64_t* order, std::size_t n,
                              const double* edges, int bins, bool floor, const std::int64_t* class_start,
                              const std::int64_t* block_offset, unsigned long long* table) {
    for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
         p += std::size_t(gridDim.x) * blockDim.x) {
        const std::int64_t c = label[p];
        const std::int64_t block = block_offset[c] + (static_cast<std::int64_t>(p) - class_start[c]) / risk::kBlock;
        count_one(table, block, values[order[p]], edges + c * (bins + 1), bins, floor);
    }
}

template <class T>
__global__ void count_pooled(const T* values, std::size_t n, const double* edges, int bins, bool floor,
                             std::int64_t first_block, unsigned long long* table) {
    for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
         i += std::size_t(gridDim.x) * blockDim.x)
        count_one(table, first_block + static_cast<std::int64_t>(i) / risk::kBlock, values[i], edges, bins, floor);
}

template <class T>
void counts(const T* values, const std::int64_t* labels, std::size_t n, const double* edges,
            const double* pooled_edges, std::int64_t classes, int bins, bool floor, const std::int64_t* class_start,
            const std::int64_t* block_offset, std::int64_t* table) {
    const std::size_t slots = bins + 1;
    const std::size_t table_size = block_offset[classes + 1] * slots;
    thrust::device_vector<T> d_values(values, values + n);
    thrust::device_vector<std::int64_t> d_label(labels, labels + n), d_order(n);
    thrust::device_vector<double> d_edges(edges, edges + classes * slots);
    thrust::device_vector<std::int64_t> d_start(class_start, class_start + classes + 1);
    thrust::device_vector<std::int64_t> d_offset(block_offset, block_offset + classes + 2);
    thrust::device_vector<unsigned long long> d_table(table_size, 0ULL);
    thrust::sequence(d_order.begin(), d_order.end());
    thrust::stable_sort_by_key(d_label.begin(), d_label.end(), d_order.begin());

    count_classes<<<grid(n), kThreads>>>(
        thrust::raw_pointer_cast(d_values.data()), thrust::raw_pointer_cast(d_label.data()),
        thrust::raw_pointer_cast(d_order.data()), n, thrust::raw_pointer_cast(d_edges.data()), bins, floor,
        thrust::raw_pointer_cast(d_start.data()), thrust::raw_pointer_cast(d_offset.data()),
        thrust::raw_pointer_cast(d_table.data()));
    check(cudaGetLastError(), "risk histogram counting");
    if (pooled_edges) {
        thrust::device_vector<double> d_pooled(pooled_edges, pooled_edges + slots);
        count_pooled<<<grid(n), kThreads>>>(thrust::raw_pointer_cast(d_values.data()), n,
                                            thrust::raw_pointer_cast(d_pooled.data()), bins, floor,
                                            block_offset[classes], thrust::raw_pointer_cast(d_table.data()));
        check(cudaGetLastError(), "risk histogram counting (pooled)");
    }
    // Counts are non-negative, so the unsigned counters are the int64 table bit for bit.
    static_assert(sizeof(unsigned long long) == sizeof(std::int64_t));
    check(cudaMemcpy(table, thrust::raw_pointer_cast(d_table.data()), table_size * sizeof(std::int64_t),
                     cudaMemcpyDeviceToHost),
          "risk histogram counting");
}

template <class T>
__global__ void score(const T* values, const std::int64_t* labels, std::size_t n, const double* edges,
                      const double* h_in, const double* h_out, std::int64_t classes, int bins, double odds,
                      double no_evidence, double* out, int* bad) {
    for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
         i += std::size_t(gridDim.x) * blockDim.x) {
        const std::int64_t c = labels[i];
        const T x = values[i];
        if (c < 0 || c >= classes || !isfinite(x)) {
            *bad = 1;
            continue;
        }
        const int bin = risk::find_bin(static_cast<double>(x), edges + c * (bins + 1), bins);
        out[i] = risk::risk_score(h_in + c * bins, h_out + c * bins, bins, bin, odds, no_evidence);
    }
}

template <class T>
bool scores(const T* values, const std::int64_t* labels, std::size_t n, const double* edges, const double* h_in,
            const double* h_out, std::int64_t classes, int bins, double odds, double no_evidence, double* out) {
    thrust::device_vector<T> d_values(values, values + n);
    thrust::device_vector<std::int64_t> d_labels(labels, labels + n);
    thrust::device_vector<double> d_edges(edges, edges + classes * (bins + 1));
    thrust::device_vector<double> d_in(h_in, h_in + classes * bins), d_out_h(h_out, h_out + classes * bins);
    thrust::device_vector<double> d_scores(n);
    thrust::device_vector<int> d_bad(1, 0);
    score<<<grid(n), kThreads>>>(thrust::raw_pointer_cast(d_values.data()), thrust::raw_pointer_cast(d_labels.data()),
                                 n, thrust::raw_pointer_cast(d_edges.data()), thrust::raw_pointer_cast(d_in.data()),
                                 thrust::raw_pointer_cast(d_out_h.data()), classes, bins, odds, no_evidence,
                                 thrust::raw_pointer_cast(d_scores.data()), thrust::raw_pointer_cast(d_bad.data()));
    check(cudaGetLastError(), "risk scores");
    check(cudaDeviceSynchronize(), "risk scores");
    thrust::copy(d_scores.begin(), d_scores.end(), out);
    return d_bad[0] == 0;
}

}  // namespace

void histogram_counts(const float* values, const std::int64_t* labels, std::size_t n, const double* edges,
                      const double* pooled_edges, std::int64_t classes, int bins, bool floor,
                      const std::int64_t* class_start, const std::int64_t* block_offset, std::int64_t* table) {
    counts(values, labels, n, edges, pooled_edges, classes, bins, floor, class_start, block_offset, table);
}

void histogram_counts(const double* values, const std::int64_t* labels, std::size_t n, const double* edges,
                      const double* pooled_edges, std::int64_t classes, int bins, bool floor,
                      const std::int64_t* class_start, const std::int64_t* block_offset, std::int64_t* table) {
    counts(values, labels, n, edges, pooled_edges, classes, bins, floor, class_start, block_offset, table);
}

bool risk_scores(const float* values, const std::int64_t* labels, std::size_t n, const double* edges,
                 const double* h_in, const double* h_out, std::int64_t classes, int bins, double odds,
                 double no_evidence, double* out) {
    return scores(values, labels, n, edges, h_in, h_out, classes, bins, odds, no_evidence, out);
}

bool risk_scores(const double* values, const std::int64_t* labels, std::size_t n, const double* edges,
                 const double* h_in, const double* h_out, std::int64_t classes, int bins, double odds,
                 double no_evidence, double* out) {
    return scores(values, labels, n, edges, h_in, h_out, classes, bins, odds, no_evidence, out);
}

}  // namespace tfmia::cuda
