// ROC points on the GPU: sort the score keys, count members and non-members
// per distinct score, and accumulate from the largest score down.  The
// division into rates, the trapezoids and numpy's pairwise sum stay on the
// host (roc.cpp), so curves and AUC are the CPU path's bit for bit.
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/functional.h>
#include <thrust/iterator/reverse_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/iterator/zip_iterator.h>
#include <thrust/reduce.h>
#include <thrust/reverse.h>
#include <thrust/scan.h>
#include <thrust/sort.h>
#include <thrust/tuple.h>

#include "cuda/sorting.hpp"

namespace tfmia::cuda {
namespace {

using Counts = thrust::tuple<std::int64_t, std::int64_t>;

// Membership -> (negatives, positives) holding one score.
struct MemberToCounts {
    __host__ __device__ Counts operator()(bool positive) const { return Counts(!positive, positive); }
};

struct AddCounts {
    __host__ __device__ Counts operator()(const Counts& x, const Counts& y) const {
        return Counts(thrust::get<0>(x) + thrust::get<0>(y), thrust::get<1>(x) + thrust::get<1>(y));
    }
};

template <class K>
RocPoints<K> points(const K* keys, const bool* positive, std::size_t n) {
    thrust::device_vector<K> key(keys, keys + n);
    thrust::device_vector<bool> member(positive, positive + n);
    thrust::sort_by_key(key.begin(), key.end(), member.begin());

    thrust::device_vector<K> distinct(n);
    thrust::device_vector<std::int64_t> neg(n), pos(n);
    const auto counts = thrust::make_zip_iterator(thrust::make_tuple(neg.begin(), pos.begin()));
    const auto ends = thrust::reduce_by_key(key.begin(), key.end(),
                                            thrust::make_transform_iterator(member.begin(), MemberToCounts()),
                                            distinct.begin(), counts, thrust::equal_to<K>(), AddCounts());
    const std::size_t size = ends.first - distinct.begin();

    // Largest score first, counts accumulated from the top.
    const auto counts_end = thrust::make_zip_iterator(thrust::make_tuple(neg.begin() + size, pos.begin() + size));
    thrust::device_vector<std::int64_t> fps(size), tps(size);
    thrust::inclusive_scan(thrust::make_reverse_iterator(counts_end), thrust::make_reverse_iterator(counts),
                           thrust::make_zip_iterator(thrust::make_tuple(fps.begin(), tps.begin())), AddCounts());

    RocPoints<K> out;
    out.key.resize(size);
    out.fps.resize(size);
    out.tps.resize(size);
    thrust::reverse(distinct.begin(), distinct.begin() + size);
    thrust::copy(distinct.begin(), distinct.begin() + size, out.key.begin());
    thrust::copy(fps.begin(), fps.end(), out.fps.begin());
    thrust::copy(tps.begin(), tps.end(), out.tps.begin());
    return out;
}

}  // namespace

RocPoints<std::uint32_t> roc_points(const std::uint32_t* keys, const bool* positive, std::size_t n) {
    return points(keys, positive, n);
}

RocPoints<std::uint64_t> roc_points(const std::uint64_t* keys, const bool* positive, std::size_t n) {
    return points(keys, positive, n);
}

}  // namespace tfmia::cuda
