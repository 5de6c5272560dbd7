// Sorting building blocks shared by the threshold and ROC kernels.
//
// Floats are sorted as unsigned integers: `to_key` maps a finite float to an
// unsigned integer of the same width such that
//     x < y  <=>  to_key(x) < to_key(y)      and      x == y  <=>  to_key(x) == to_key(y)
// (-0.0 is mapped like +0.0 because the two compare equal).  Equal keys are
// therefore exactly the ties numpy sees, and `radix_sort` orders keys in
// a few passes.  The run walkers then visit the distinct keys of two sorted
// arrays (members / non-members) with how many entries of each hold the key.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tfmia::sorting {

template <class T>
using key_t = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;

template <class K>
constexpr K sign_bit = K(1) << (8 * sizeof(K) - 1);

// Order-preserving key of a finite float (see the file comment).
template <class T>
inline key_t<T> to_key(T x) {
    using K = key_t<T>;
    static_assert(sizeof(K) == sizeof(T));
    if (x == T(0)) x = T(0);  // fold -0.0 onto +0.0
    K u;
    std::memcpy(&u, &x, sizeof u);
    return (u & sign_bit<K>) ? ~u : (u | sign_bit<K>);
}

// Inverse of to_key (zero comes back as +0.0).
template <class T>
inline T from_key(key_t<T> k) {
    using K = key_t<T>;
    const K u = (k & sign_bit<K>) ? (k & ~sign_bit<K>) : ~k;
    T x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

namespace detail {

template <class K>
void insertion_sort(K* a, std::size_t n) {
    for (std::size_t i = 1; i < n; ++i) {
        const K k = a[i];
        std::size_t j = i;
        for (; j > 0 && a[j - 1] > k; --j) a[j] = a[j - 1];
        a[j] = k;
    }
}

template <class K>
int bit_width(K x) {
    int width = 0;
    for (; x != 0; x >>= 1) ++width;
    return width;
}

// Most-significant-digit radix sort for cache-resident arrays: buckets on
// the (up to 11) bits below the prefix every key shares, about n / 4
// buckets, recursing per bucket down to insertion sort.  Sorts the n keys in
// `data`; the result ends in `other` when into_other, else in `data`.
template <class K>
void msd_radix_sort(K* data, K* other, std::size_t n, bool into_other) {
    constexpr int kMaxBits = 11;
    if (n <= 32) {
        insertion_sort(data, n);
        if (into_other) std::memcpy(other, data, n * sizeof(K));
        return;
    }
    K lo = data[0], hi = data[0];
    for (std::size_t i = 1; i < n; ++i) {
        lo = std::min(lo, data[i]);
        hi = std::max(hi, data[i]);
    }
    const int width = bit_width<K>(lo ^ hi);  // bits below the shared prefix
    if (width == 0) {                         // all keys equal
        if (into_other) std::memcpy(other, data, n * sizeof(K));
        return;
    }
    const int bits = std::min({kMaxBits, std::max(1, bit_width(n) - 2), width});
    const int shift = width - bits;
    const std::size_t buckets = std::size_t(1) << bits;
    const K mask = static_cast<K>(buckets - 1);
    std::array<std::size_t, (1 << kMaxBits) + 1> start;
    std::fill(start.begin(), start.begin() + buckets + 1, 0);
    for (std::size_t i = 0; i < n; ++i) ++start[((data[i] >> shift) & mask) + 1];
    for (std::size_t d = 0; d < buckets; ++d) start[d + 1] += start[d];
    std::array<std::size_t, (1 << kMaxBits)> next;
    std::copy(start.begin(), start.begin() + buckets, next.begin());
    for (std::size_t i = 0; i < n; ++i) other[next[(data[i] >> shift) & mask]++] = data[i];
    for (std::size_t d = 0; d < buckets; ++d) {
        const std::size_t size = start[d + 1] - start[d];
        if (size > 0) msd_radix_sort(other + start[d], data + start[d], size, !into_other);
    }
}

// Least-significant-digit radix sort with 8-bit digits for large arrays
// (streaming passes), counting only the digits below the shared prefix.
template <class K>
void lsd_radix_sort(K* keys, K* scratch, std::size_t n) {
    K lo = keys[0], hi = keys[0];
    for (std::size_t i = 1; i < n; ++i) {
        lo = std::min(lo, keys[i]);
        hi = std::max(hi, keys[i]);
    }
    const int digits = (bit_width<K>(lo ^ hi) + 7) / 8;
    std::array<std::array<std::size_t, 256>, sizeof(K)> count{};
    for (std::size_t i = 0; i < n; ++i) {
        const K k = keys[i];
        for (int d = 0; d < digits; ++d) ++count[d][(k >> (8 * d)) & 0xFF];
    }
    K* src = keys;
    K* dst = scratch;
    for (int d = 0; d < digits; ++d) {
        auto& c = count[d];
        if (c[(src[0] >> (8 * d)) & 0xFF] == n) continue;  // every key has this digit
        std::size_t offset = 0;
        for (auto& slot : c) {
            const std::size_t here = slot;
            slot = offset;
            offset += here;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const K k = src[i];
            dst[c[(k >> (8 * d)) & 0xFF]++] = k;
        }
        std::swap(src, dst);
    }
    if (src != keys) std::memcpy(keys, src, n * sizeof(K));
}

}  // namespace detail

// Sorts n unsigned keys ascending (equal keys are indistinguishable, so
// stability is moot): MSD radix for up to 2**14 keys (cache-resident, the
// per-class case), LSD radix beyond.  Measured on the 2-core development
// machine, each is about twice as fast as the other in its range.  `scratch`
// must hold n keys.
template <class K>
void radix_sort(K* keys, K* scratch, std::size_t n) {
    static_assert(std::is_unsigned_v<K>);
    if (n <= (std::size_t(1) << 14))
        detail::msd_radix_sort(keys, scratch, n, false);
    else
        detail::lsd_radix_sort(keys, scratch, n);
}

// One distinct key and how many entries of each of the two arrays hold it.
template <class K>
struct Run {
    K key;
    std::int64_t n_a;
    std::int64_t n_b;
};

// Key that no finite value maps to: the end marker of a walk in direction
// Step (+1: ascending, so the largest key; -1: descending, so zero).
template <class K, int Step>
constexpr K sentinel = Step > 0 ? ~K(0) : K(0);

// The distinct keys of two sorted (ascending) arrays a and b, walked from
// the given first keys in direction Step (+1 ascending, -1 descending).  Each
// array must be followed, in walk direction, by sentinel<K, Step>; the walk
// is then a branch-light merge: no bounds checks, no data-dependent branch
// for distinct keys.
template <class K, int Step>
class SentinelRuns {
public:
    SentinelRuns(const K* a_first, const K* b_first) : a_(a_first), b_(b_first), x_(*a_first), y_(*b_first) {}

    bool next(Run<K>& run) {
        const K v = (Step > 0) == (x_ < y_) ? x_ : y_;
        if (v == sentinel<K, Step>) return false;
        const K* a0 = a_;
        const K* b0 = b_;
        do {
            a_ += Step * static_cast<int>(x_ == v);
            b_ += Step * static_cast<int>(y_ == v);
            x_ = *a_;
            y_ = *b_;
        } while (x_ == v || y_ == v);
        run = {v, (a_ - a0) * Step, (b_ - b0) * Step};
        return true;
    }

private:
    const K* a_;
    const K* b_;
    K x_, y_;  // the current heads
};

// Runs already materialised in arrays (as the CUDA kernels return them).
template <class K>
class ArrayRuns {
public:
    ArrayRuns(const K* keys, const std::int64_t* n_a, const std::int64_t* n_b, std::size_t n)
        : keys_(keys), n_a_(n_a), n_b_(n_b), n_(n) {}

    bool next(Run<K>& run) {
        if (i_ == n_) return false;
        run = {keys_[i_], n_a_[i_], n_b_[i_]};
        ++i_;
        return true;
    }

private:
    const K* keys_;
    const std::int64_t* n_a_;
    const std::int64_t* n_b_;
    std::size_t n_;
    std::size_t i_ = 0;
};

}  // namespace tfmia::sorting
