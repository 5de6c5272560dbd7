// Host entry points of the CUDA kernels behind the threshold, ROC and risk
// histogram families.  They take host pointers, do the sorting and integer
// counting on the device and return integer results; the callers finish on
// the host with the CPU code, so the floating-point results are the CPU
// path's to the last bit.  Keys are sorting::to_key of the values (computed
// and validated on the host).  Errors surface as std::runtime_error
// (thrust::system_error) or std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tfmia::cuda {

// The distinct (label, key) pairs of two labelled key sets a and b, ascending
// by label then key, with how many entries of a and of b hold each pair.
template <class K>
struct LabelledRuns {
    std::vector<std::int64_t> label;
    std::vector<K> key;
    std::vector<std::int64_t> n_a;
    std::vector<std::int64_t> n_b;
};

// Null labels mean every entry of that set has label 0.
LabelledRuns<std::uint32_t> labelled_runs(const std::uint32_t* keys_a, const std::int64_t* labels_a, std::size_t n_a,
                                          const std::uint32_t* keys_b, const std::int64_t* labels_b, std::size_t n_b);
LabelledRuns<std::uint64_t> labelled_runs(const std::uint64_t* keys_a, const std::int64_t* labels_a, std::size_t n_a,
                                          const std::uint64_t* keys_b, const std::int64_t* labels_b, std::size_t n_b);

// ROC points of scores (as keys) with ground truth: the distinct keys, largest
// first, with the numbers of negatives (fps) and positives (tps) whose key is
// >= that key.
template <class K>
struct RocPoints {
    std::vector<K> key;
    std::vector<std::int64_t> fps;
    std::vector<std::int64_t> tps;
};

RocPoints<std::uint32_t> roc_points(const std::uint32_t* keys, const bool* positive, std::size_t n);
RocPoints<std::uint64_t> roc_points(const std::uint64_t* keys, const bool* positive, std::size_t n);

// Counting for the risk histograms of ONE side (members or non-members); see
// risk_histograms.hpp for the table layout.  `labels` are in [0, rows - 1)
// (validated by the caller); row `rows - 1` is the pooled histogram and is
// filled (record i in block i / block_size) only when `pooled` is true.
// Rows with skip[row] true are left at zero.
void histogram_counts(const float* values, const std::int64_t* labels, std::size_t n, const double* edges,
                      std::int64_t rows, int bins, const std::int64_t* row_start, const std::int64_t* block_offset,
                      const bool* skip, bool pooled, bool floor, std::int64_t* table);
void histogram_counts(const double* values, const std::int64_t* labels, std::size_t n, const double* edges,
                      std::int64_t rows, int bins, const std::int64_t* row_start, const std::int64_t* block_offset,
                      const bool* skip, bool pooled, bool floor, std::int64_t* table);

// Risk scores r = h_in / (h_in + h_out * odds) of values (class labels),
// with the reference's bin lookup and outward search; `odds` is
// (1 - member_prior) / member_prior.  Returns false (and leaves `out`
// partly written) when a value is not finite or a label is outside
// [0, classes): the caller rescans on the host to name the culprit.
bool risk_scores(const float* values, const std::int64_t* labels, std::size_t n, const double* edges,
                 const double* h_in, const double* h_out, std::int64_t classes, int bins, double odds,
                 double no_evidence, double* out);
bool risk_scores(const double* values, const std::int64_t* labels, std::size_t n, const double* edges,
                 const double* h_in, const double* h_out, std::int64_t classes, int bins, double odds,
                 double no_evidence, double* out);

}  // namespace tfmia::cuda
