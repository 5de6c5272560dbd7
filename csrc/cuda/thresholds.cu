// Sorting and run-length counting for the balanced-accuracy thresholds on
// the GPU: the distinct (label, key) pairs of members (a) and non-members
// (b) with how many of each hold them.  The sweep over these runs and the
// choice of the first maximiser stay on the host (thresholds.cpp), so the
// thresholds are the CPU path's bit for bit.
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/fill.h>
#include <thrust/functional.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/iterator/zip_iterator.h>
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/tuple.h>

#include "cuda/sorting.hpp"

namespace tfmia::cuda {
namespace {

using Counts = thrust::tuple<std::int64_t, std::int64_t>;

// Side flag (1: member) -> (members, non-members) holding one entry.
struct SideToCounts {
    __host__ __device__ Counts operator()(unsigned char member) const {
        return Counts(member, 1 - member);
    }
};

struct AddCounts {
    __host__ __device__ Counts operator()(const Counts& x, const Counts& y) const {
        return Counts(thrust::get<0>(x) + thrust::get<0>(y), thrust::get<1>(x) + thrust::get<1>(y));
    }
};

template <class K>
LabelledRuns<K> runs(const K* keys_a, const std::int64_t* labels_a, std::size_t n_a, const K* keys_b,
                     const std::int64_t* labels_b, std::size_t n_b) {
    const std::size_t n = n_a + n_b;
    thrust::device_vector<K> key(n);
    thrust::device_vector<std::int64_t> label(n, 0);
    thrust::device_vector<unsigned char> member(n, 0);
    thrust::copy(keys_a, keys_a + n_a, key.begin());
    thrust::copy(keys_b, keys_b + n_b, key.begin() + n_a);
    if (labels_a) thrust::copy(labels_a, labels_a + n_a, label.begin());
    if (labels_b) thrust::copy(labels_b, labels_b + n_b, label.begin() + n_a);
    thrust::fill(member.begin(), member.begin() + n_a, 1);

    // Order by (label, key): radix sort on the key, then a stable one on the label.
    thrust::sort_by_key(key.begin(), key.end(),
                        thrust::make_zip_iterator(thrust::make_tuple(label.begin(), member.begin())));
    if (labels_a || labels_b)
        thrust::stable_sort_by_key(label.begin(), label.end(),
                                   thrust::make_zip_iterator(thrust::make_tuple(key.begin(), member.begin())));

    thrust::device_vector<std::int64_t> run_label(n), n_in(n), n_out(n);
    thrust::device_vector<K> run_key(n);
    const auto pairs = thrust::make_zip_iterator(thrust::make_tuple(label.begin(), key.begin()));
    const auto run_pairs = thrust::make_zip_iterator(thrust::make_tuple(run_label.begin(), run_key.begin()));
    const auto ends = thrust::reduce_by_key(
        pairs, pairs + n, thrust::make_transform_iterator(member.begin(), SideToCounts()), run_pairs,
        thrust::make_zip_iterator(thrust::make_tuple(n_in.begin(), n_out.begin())),
        thrust::equal_to<thrust::tuple<std::int64_t, K>>(), AddCounts());
    const std::size_t size = ends.first - run_pairs;

    LabelledRuns<K> out;
    out.label.resize(size);
    out.key.resize(size);
    out.n_a.resize(size);
    out.n_b.resize(size);
    thrust::copy(run_label.begin(), run_label.begin() + size, out.label.begin());
    thrust::copy(run_key.begin(), run_key.begin() + size, out.key.begin());
    thrust::copy(n_in.begin(), n_in.begin() + size, out.n_a.begin());
    thrust::copy(n_out.begin(), n_out.begin() + size, out.n_b.begin());
    return out;
}

}  // namespace

LabelledRuns<std::uint32_t> labelled_runs(const std::uint32_t* keys_a, const std::int64_t* labels_a, std::size_t n_a,
                                          const std::uint32_t* keys_b, const std::int64_t* labels_b, std::size_t n_b) {
    return runs(keys_a, labels_a, n_a, keys_b, labels_b, n_b);
}

LabelledRuns<std::uint64_t> labelled_runs(const std::uint64_t* keys_a, const std::int64_t* labels_a, std::size_t n_a,
                                          const std::uint64_t* keys_b, const std::int64_t* labels_b, std::size_t n_b) {
    return runs(keys_a, labels_a, n_a, keys_b, labels_b, n_b);
}

}  // namespace tfmia::cuda
