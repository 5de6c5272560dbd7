// ROC curve, its integer counts and AUC, identical to scikit-learn's.
//
// sklearn.metrics.roc_curve (drop_intermediate=False) sorts the scores in
// stable descending order and emits, after a first point (0, 0, +inf), one
// point per distinct score s:
//     fps(s) = #{non-members with score >= s},   tps(s) = #{members with score >= s},
//     fpr = fps / fps[-1],   tpr = tps / tps[-1]      (float64).
// Its threshold is the tie group's last element in stable descending order:
// all of a group are equal except that -0.0 and +0.0 tie, where it is the
// zero at the largest input index.  roc_auc_score keeps the points where
// np.diff(fps, 2) or np.diff(tps, 2) is non-zero, plus the first and last
// (drop_intermediate=True), prepends (0, 0) and integrates with
// scipy.integrate.trapezoid,
//     AUC = np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0),
// whose sum is numpy's pairwise summation (numpy_sum.hpp).  The same counts,
// the same float64 operations in the same order, the same summation tree:
// the results equal scikit-learn's bit for bit.
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "common.hpp"
#include "kernel_args.hpp"
#include "numpy_sum.hpp"
#include "parallel.hpp"
#include "registry.hpp"
#include "sorting.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/sorting.hpp"
#endif

namespace tfmia {
namespace {

using sorting::key_t;
using sorting::to_key;

// One ROC point: a distinct score (as key) and the counts at or above it.
template <class K>
struct Point {
    K key;
    std::int64_t fps;
    std::int64_t tps;
};

// Points from runs walked largest key first (n_a members, n_b non-members).
template <class K>
class CumulativePoints {
public:
    explicit CumulativePoints(sorting::SentinelRuns<K, -1> runs) : runs_(runs) {}

    bool next(Point<K>& p) {
        sorting::Run<K> run;
        if (!runs_.next(run)) return false;
        tps_ += run.n_a;
        fps_ += run.n_b;
        p = {run.key, fps_, tps_};
        return true;
    }

private:
    sorting::SentinelRuns<K, -1> runs_;
    std::int64_t fps_ = 0, tps_ = 0;
};

// The validated scores: keys (members first when partitioned), class sizes
// and the sign of the last zero in input order (the threshold sklearn reports
// for the zero tie group).
template <class T>
struct Scores {
    std::vector<key_t<T>> keys;
    std::int64_t n_pos = 0, n_neg = 0;
    bool negative_zero = false;

    T threshold(key_t<T> key) const {
        const T x = sorting::from_key<T>(key);
        return (x == T(0) && negative_zero) ? T(-0.0) : x;
    }
};

// One pass: checks finiteness, counts members and converts to keys, in
// input order when `partition` is false, else laid out for the descending
// walk as [sentinel, members..., sentinel, non-members...].
template <class T>
Scores<T> prepare(const T* scores, const bool* member, std::int64_t n, bool partition) {
    using K = key_t<T>;
    Scores<T> s;
    s.keys.resize(partition ? n + 2 : n);
    std::int64_t front = 1, back = n + 2;
    for (std::int64_t i = 0; i < n; ++i) {
        const T x = scores[i];
        if (!std::isfinite(x)) fail_nonfinite("scores");
        if (x == T(0)) s.negative_zero = std::signbit(x);
        const K k = to_key(x);
        if (!partition)
            s.keys[i] = k;
        else if (member[i])
            s.keys[front++] = k;
        else
            s.keys[--back] = k;
        s.n_pos += member[i];
    }
    s.n_neg = n - s.n_pos;
    if (s.n_pos == 0 || s.n_neg == 0) fail("is_member must contain both members and non-members");
    if (partition) s.keys[0] = s.keys[s.n_pos + 1] = sorting::sentinel<K, -1>;
    return s;
}

// The CPU source of points: sort members and non-members, walk the runs.
template <class T>
struct CpuCurve {
    using key_type = key_t<T>;
    Scores<T> scores;

    CpuCurve(const T* values, const bool* member, std::int64_t n) : scores(prepare(values, member, n, true)) {
        using K = key_t<T>;
        parallel_for_each<std::vector<K>>(2, n >= kParallelMinWork, [&](std::int64_t side, std::vector<K>& scratch) {
            const std::int64_t size = side == 0 ? scores.n_pos : scores.n_neg;
            scratch.resize(size);
            sorting::radix_sort(first(side), scratch.data(), size);
        });
    }

    // First key of the members (side 0) or non-members (side 1).
    key_type* first(std::int64_t side) { return scores.keys.data() + (side == 0 ? 1 : scores.n_pos + 2); }
    const key_type* last(std::int64_t side) const {
        return scores.keys.data() + (side == 0 ? scores.n_pos : scores.n_pos + 1 + scores.n_neg);
    }

    CumulativePoints<key_type> points() const {
        return CumulativePoints<key_type>(sorting::SentinelRuns<key_type, -1>(last(0), last(1)));
    }

    std::int64_t size() const {
        auto pts = points();
        Point<key_type> p;
        std::int64_t k = 0;
        while (pts.next(p)) ++k;
        return k;
    }
};

#ifdef TFMIA_HAVE_CUDA
template <class K>
class ArrayPoints {
public:
    explicit ArrayPoints(const cuda::RocPoints<K>& pts) : pts_(&pts) {}

    bool next(Point<K>& p) {
        if (i_ == pts_->key.size()) return false;
        p = {pts_->key[i_], pts_->fps[i_], pts_->tps[i_]};
        ++i_;
        return true;
    }

private:
    const cuda::RocPoints<K>* pts_;
    std::size_t i_ = 0;
};

// The CUDA source of points: sorting and cumulative counts on the GPU.
template <class T>
struct CudaCurve {
    using key_type = key_t<T>;
    Scores<T> scores;
    cuda::RocPoints<key_t<T>> pts;

    CudaCurve(const T* values, const bool* member, std::int64_t n)
        : scores(prepare(values, member, n, false)), pts(cuda::roc_points(scores.keys.data(), member, n)) {}

    ArrayPoints<key_t<T>> points() const { return ArrayPoints<key_t<T>>(pts); }
    std::int64_t size() const { return static_cast<std::int64_t>(pts.key.size()); }
};
#endif

// Writes the curve with its leading (0, 0, +inf) point: counts when Out is
// int64, rates (count / total, float64) when Out is double.
template <class Out, class Curve>
void write_curve(const Curve& curve, Out* x, Out* y, double* thresholds) {
    x[0] = Out(0);
    y[0] = Out(0);
    thresholds[0] = std::numeric_limits<double>::infinity();
    const double n_neg = static_cast<double>(curve.scores.n_neg);
    const double n_pos = static_cast<double>(curve.scores.n_pos);
    auto pts = curve.points();
    std::int64_t i = 1;
    for (Point<typename Curve::key_type> p; pts.next(p); ++i) {
        if constexpr (std::is_same_v<Out, double>) {
            x[i] = static_cast<double>(p.fps) / n_neg;
            y[i] = static_cast<double>(p.tps) / n_pos;
        } else {
            x[i] = p.fps;
            y[i] = p.tps;
        }
        thresholds[i] = static_cast<double>(curve.scores.threshold(p.key));
    }
}

// roc_auc_score: drop_intermediate, then the trapezoids from (0, 0), summed
// as np.sum does.
template <class Curve>
double area(const Curve& curve) {
    using K = typename Curve::key_type;
    const double n_neg = static_cast<double>(curve.scores.n_neg);
    const double n_pos = static_cast<double>(curve.scores.n_pos);
    std::vector<double> terms;
    double x_last = 0.0, y_last = 0.0;
    auto keep = [&](const Point<K>& p) {
        const double x = static_cast<double>(p.fps) / n_neg;
        const double y = static_cast<double>(p.tps) / n_pos;
        terms.push_back((x - x_last) * (y + y_last) / 2.0);
        x_last = x;
        y_last = y;
    };
    auto pts = curve.points();
    Point<K> prev, cur, next;
    pts.next(cur);  // at least one point: the scores are not empty
    keep(cur);      // the first point is always kept
    prev = cur;
    if (!pts.next(cur)) return numpy_sum(terms.data(), static_cast<std::ptrdiff_t>(terms.size()));
    while (pts.next(next)) {
        if (next.fps - cur.fps != cur.fps - prev.fps || next.tps - cur.tps != cur.tps - prev.tps) keep(cur);
        prev = cur;
        cur = next;
    }
    keep(cur);  // and so is the last
    return numpy_sum(terms.data(), static_cast<std::ptrdiff_t>(terms.size()));
}

// Calls f(curve) with the CPU or CUDA curve of the checked arguments, the
// GIL released.
template <class F>
auto with_curve(const py::array& scores, const py::array& is_member, bool use_cuda, F&& f) {
    const py::ssize_t n = vector_length(scores, "scores");
    require_nonempty(scores, "scores");
    const bool* member = bool_ptr(is_member, "is_member");
    require_length(is_member, "is_member", n, "scores");
#ifndef TFMIA_HAVE_CUDA
    if (use_cuda) fail("device='cuda' is not available: tfmia was built without CUDA");
#endif
    auto run = [&](auto tag) {
        using T = decltype(tag);
        const T* values = static_cast<const T*>(scores.data());
#ifdef TFMIA_HAVE_CUDA
        if (use_cuda) {
            std::unique_ptr<CudaCurve<T>> curve;
            {
                py::gil_scoped_release release;
                curve = std::make_unique<CudaCurve<T>>(values, member, n);
            }
            return f(*curve);
        }
#endif
        std::unique_ptr<CpuCurve<T>> curve;
        {
            py::gil_scoped_release release;
            curve = std::make_unique<CpuCurve<T>>(values, member, n);
        }
        return f(*curve);
    };
    return float_type(scores, "scores") == FloatType::f32 ? run(float{}) : run(double{});
}

template <class Out>
py::tuple curve_arrays(const py::array& scores, const py::array& is_member, bool use_cuda) {
    return with_curve(scores, is_member, use_cuda, [](const auto& curve) {
        const py::ssize_t size = curve.size() + 1;
        py::array_t<Out> x(size), y(size);
        py::array_t<double> thresholds(size);
        Out* px = x.mutable_data();
        Out* py_ = y.mutable_data();
        double* pt = thresholds.mutable_data();
        {
            py::gil_scoped_release release;
            write_curve(curve, px, py_, pt);
        }
        return py::make_tuple(x, y, thresholds);
    });
}

double roc_auc(const py::array& scores, const py::array& is_member, bool use_cuda) {
    return with_curve(scores, is_member, use_cuda, [](const auto& curve) {
        py::gil_scoped_release release;
        return area(curve);
    });
}

}  // namespace

void register_roc(py::module_& m) {
    m.def("roc_counts", &curve_arrays<std::int64_t>, py::arg("scores"), py::arg("is_member"), py::arg("use_cuda"),
          "(fps, tps, thresholds): int64 counts of non-members / members with score >= threshold, one\n"
          "point per distinct score (descending) after (0, 0, +inf), as scikit-learn builds its ROC.");
    m.def("roc_curve", &curve_arrays<double>, py::arg("scores"), py::arg("is_member"), py::arg("use_cuda"),
          "(fpr, tpr, thresholds) equal to sklearn.metrics.roc_curve(is_member, scores,\n"
          "drop_intermediate=False).");
    m.def("roc_auc", &roc_auc, py::arg("scores"), py::arg("is_member"), py::arg("use_cuda"),
          "AUC equal to sklearn.metrics.roc_auc_score(is_member, scores) bit for bit.");
}

}  // namespace tfmia
