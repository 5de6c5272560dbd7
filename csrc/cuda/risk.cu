// Risk-score histograms and scores on the GPU.  Counting: each value's rank
// within its class comes from a stable sort by label, its slot from the
// shared per-value step (risk_kernels.hpp), and atomic increments fill the
// integer count tables that risk.cpp turns into histograms with the CPU
// code.  Scoring: one thread per value, the reference's lookup and outward
// search, every floating-point step rounded on its own (no FMA
// contraction), so the scores are the CPU path's bit for bit.  The functors
// are thrust's usual __host__ __device__ ones and run on any thrust backend.
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cmath>

#include "cuda/sorting.hpp"
#include "risk_kernels.hpp"

namespace tfmia::cuda {
namespace {

using Counter = unsigned long long;

__host__ __device__ inline void increment(Counter* counter) {
#ifdef __CUDA_ARCH__
    atomicAdd(counter, Counter(1));
#else
    __atomic_fetch_add(counter, Counter(1), __ATOMIC_RELAXED);
#endif
}

__host__ __device__ inline void raise_flag(int* flag) {
#ifdef __CUDA_ARCH__
    atomicExch(flag, 1);
#else
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
#endif
}

template <class T>
__host__ __device__ inline void count_value(Counter* table, std::int64_t block, T value, const double* e, int bins,
                                            bool floor) {
    const double v = static_cast<double>(risk::floored(value, floor));
    Counter* counters = table + block * risk::slots_per_block(bins);
    increment(counters + risk::histogram_slot(v, e, bins));
    if (v <= e[bins]) increment(counters + bins + 1);
}

// Sorted position p holds value order[p] of class label[p]; its rank in the
// class is p - class_start[label].
template <class T>
struct CountClasses {
    const T* values;
    const std::int64_t* label;
    const std::int64_t* order;
    const double* edges;
    int bins;
    bool floor;
    const std::int64_t* class_start;
    const std::int64_t* block_offset;
    Counter* table;

    __host__ __device__ void operator()(std::int64_t p) const {
        const std::int64_t c = label[p];
        const std::int64_t block = block_offset[c] + (p - class_start[c]) / risk::kBlock;
        count_value(table, block, values[order[p]], edges + c * (bins + 1), bins, floor);
    }
};

template <class T>
struct CountPooled {
    const T* values;
    const double* edges;
    int bins;
    bool floor;
    std::int64_t first_block;
    Counter* table;

    __host__ __device__ void operator()(std::int64_t i) const {
        count_value(table, first_block + i / risk::kBlock, values[i], edges, bins, floor);
    }
};

template <class T>
struct Score {
    const T* values;
    const std::int64_t* labels;
    const double* edges;
    const double* h_in;
    const double* h_out;
    std::int64_t classes;
    int bins;
    double odds;
    double no_evidence;
    double* out;
    int* bad;

    __host__ __device__ void operator()(std::int64_t i) const {
        const std::int64_t c = labels[i];
        const T x = values[i];
        if (c < 0 || c >= classes || !std::isfinite(x)) {
            raise_flag(bad);
            return;
        }
        const int bin = risk::find_bin(static_cast<double>(x), edges + c * (bins + 1), bins);
        out[i] = risk::risk_score(h_in + c * bins, h_out + c * bins, bins, bin, odds, no_evidence);
    }
};

template <class F>
void for_each_index(std::size_t n, F f) {
    thrust::for_each(thrust::counting_iterator<std::int64_t>(0),
                     thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(n)), f);
}

template <class V>
auto raw(V& v) {
    return thrust::raw_pointer_cast(v.data());
}

template <class T>
void counts(const T* values, const std::int64_t* labels, std::size_t n, const double* edges,
            const double* pooled_edges, std::int64_t classes, int bins, bool floor, const std::int64_t* class_start,
            const std::int64_t* block_offset, std::int64_t* table) {
    const std::size_t slots = risk::slots_per_block(bins);
    const std::size_t table_size = block_offset[classes + 1] * slots;
    thrust::device_vector<T> d_values(values, values + n);
    thrust::device_vector<std::int64_t> d_label(labels, labels + n), d_order(n);
    thrust::device_vector<double> d_edges(edges, edges + classes * (bins + 1));
    thrust::device_vector<std::int64_t> d_start(class_start, class_start + classes + 1);
    thrust::device_vector<std::int64_t> d_offset(block_offset, block_offset + classes + 2);
    thrust::device_vector<Counter> d_table(table_size, Counter(0));
    thrust::sequence(d_order.begin(), d_order.end());
    thrust::stable_sort_by_key(d_label.begin(), d_label.end(), d_order.begin());
    for_each_index(n, CountClasses<T>{raw(d_values), raw(d_label), raw(d_order), raw(d_edges), bins, floor,
                                      raw(d_start), raw(d_offset), raw(d_table)});
    if (pooled_edges) {
        thrust::device_vector<double> d_pooled(pooled_edges, pooled_edges + bins + 1);
        for_each_index(n, CountPooled<T>{raw(d_values), raw(d_pooled), bins, floor, block_offset[classes],
                                         raw(d_table)});
    }
    // Counts are non-negative: the unsigned counters are the int64 table bit for bit.
    static_assert(sizeof(Counter) == sizeof(std::int64_t));
    thrust::copy(d_table.begin(), d_table.end(), reinterpret_cast<Counter*>(table));
}

template <class T>
bool scores(const T* values, const std::int64_t* labels, std::size_t n, const double* edges, const double* h_in,
            const double* h_out, std::int64_t classes, int bins, double odds, double no_evidence, double* out) {
    thrust::device_vector<T> d_values(values, values + n);
    thrust::device_vector<std::int64_t> d_labels(labels, labels + n);
    thrust::device_vector<double> d_edges(edges, edges + classes * (bins + 1));
    thrust::device_vector<double> d_in(h_in, h_in + classes * bins), d_out(h_out, h_out + classes * bins);
    thrust::device_vector<double> d_scores(n);
    thrust::device_vector<int> d_bad(1, 0);
    for_each_index(n, Score<T>{raw(d_values), raw(d_labels), raw(d_edges), raw(d_in), raw(d_out), classes, bins, odds,
                               no_evidence, raw(d_scores), raw(d_bad)});
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
