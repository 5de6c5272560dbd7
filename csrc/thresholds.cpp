// Balanced-accuracy thresholds (Song & Mittal, `_thre_setting`) in O(N log N).
//
// The reference scans every observed value t -- values_in, then values_out,
// in the given order -- scores
//     acc(t) = 0.5 * (#{x in values_in : x >= t} / n_in + #{x in values_out : x < t} / n_out)
// in double precision and keeps the first t whose acc is strictly larger than
// every acc before it.  acc depends on t only through the two counts, so one
// sweep over the distinct values in ascending order scores every candidate
// with the reference's arithmetic; the reference's answer is then the first
// element, in concatenation order, whose value attains the maximum.  Per
// class the same runs on that class's records; a class without members or
// without non-members takes the global (class-independent) threshold.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "buffer.hpp"
#include "common.hpp"
#include "kernel_args.hpp"
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

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The shadow data of one fit: members ("in") and non-members ("out") with
// class labels (null labels: a single class 0, the global threshold).
template <class T>
struct Sides {
    const T* in;
    const std::int64_t* in_labels;
    std::int64_t n_in;
    const T* out;
    const std::int64_t* out_labels;
    std::int64_t n_out;
    std::int64_t num_classes;

    Sides pooled() const { return {in, nullptr, n_in, out, nullptr, n_out, 1}; }
};

// Per class: the best balanced accuracy (NaN where the class lacks members or
// non-members) and the keys attaining it, ascending.
template <class K>
struct ClassBest {
    std::vector<double> accuracy;
    std::vector<std::vector<K>> winners;

    explicit ClassBest(std::int64_t num_classes) : accuracy(num_classes, kNaN), winners(num_classes) {}
};

// One side's keys grouped by class (a stable counting sort of checked
// entries); every class segment is followed by a free slot for the walk's end
// sentinel.
template <class K>
struct Grouped {
    std::vector<std::int64_t> size, start;
    Buffer<K> keys;

    template <class T>
    Grouped(const T* values, const std::int64_t* labels, std::int64_t n, std::int64_t num_classes)
        : size(class_sizes(labels, n, num_classes)),
          start(num_classes + 1, 0),
          keys(n + num_classes) {
        for (std::int64_t c = 0; c < num_classes; ++c) start[c + 1] = start[c] + size[c] + 1;
        std::vector<std::int64_t> next(start.begin(), start.end() - 1);
        for (std::int64_t i = 0; i < n; ++i) keys[next[labels ? labels[i] : 0]++] = to_key(values[i]);
    }

    // Sorts class c's keys and closes the segment with the ascending walk's sentinel.
    void sort(std::int64_t c, std::vector<K>& scratch) {
        K* first = keys.data() + start[c];
        scratch.resize(size[c]);
        sorting::radix_sort(first, scratch.data(), size[c]);
        first[size[c]] = sorting::sentinel<K, +1>;
    }

    const K* segment(std::int64_t c) const { return keys.data() + start[c]; }
};

// The two ratio tables of a sweep.
struct RatioTables {
    std::vector<double> member, nonmember;
};

// Per-thread buffers.
template <class K>
struct Scratch {
    std::vector<K> sort;
    RatioTables tables;
};

// Sweeps the distinct values (ascending runs: n_a members, n_b non-members
// per value) and returns the best
//     acc = 0.5 * (member[#{in < t}] + nonmember[#{out < t}]),
// storing the keys attaining it.  The tables hold the reference's ratios
// np.sum(tr >= t) / (len(tr) + 0.0) and np.sum(te < t) / (len(te) + 0.0) for
// every count (counting in double is exact below 2**53).
template <class K, class Runs>
double sweep(Runs runs, std::int64_t n_in, std::int64_t n_out, std::vector<K>& winners, RatioTables& t) {
    t.member.resize(n_in + 1);
    t.nonmember.resize(n_out + 1);
    const double d_in = static_cast<double>(n_in), d_out = static_cast<double>(n_out);
    for (std::int64_t i = 0; i <= n_in; ++i) t.member[i] = static_cast<double>(n_in - i) / d_in;
    for (std::int64_t j = 0; j <= n_out; ++j) t.nonmember[j] = static_cast<double>(j) / d_out;
    const double* member = t.member.data();
    const double* nonmember = t.nonmember.data();
    winners.clear();
    double best = -1.0;
    std::int64_t in_below = 0, out_below = 0;
    sorting::Run<K> run;
    while (runs.next(run)) {
        const double acc = 0.5 * (member[in_below] + nonmember[out_below]);
        if (acc >= best) {
            if (acc > best) winners.clear();
            best = acc;
            winners.push_back(run.key);
        }
        in_below += run.n_a;
        out_below += run.n_b;
    }
    return best;
}

template <class T>
ClassBest<key_t<T>> best_per_class_cpu(const Sides<T>& s) {
    using K = key_t<T>;
    // Grouping streams through memory at bandwidth on one thread; the one
    // parallel region of the fit (each has a barrier, which stalls while a
    // team thread is descheduled on a busy machine) does the sorting: one
    // task per (class, side), and whichever finishes a class's second side
    // sweeps it.
    Grouped<K> in(s.in, s.in_labels, s.n_in, s.num_classes);
    Grouped<K> out(s.out, s.out_labels, s.n_out, s.num_classes);
    const std::int64_t C = s.num_classes;
    ClassBest<K> best(C);
    std::vector<std::atomic<int>> sorted_sides(C);
    const bool parallel = s.n_in + s.n_out >= kParallelMinWork;
    parallel_for_each<Scratch<K>>(2 * C, parallel, [&](std::int64_t task, Scratch<K>& scratch) {
        const std::int64_t c = task / 2, ni = in.size[c], no = out.size[c];
        if (ni == 0 || no == 0) return;
        (task % 2 == 0 ? in : out).sort(c, scratch.sort);
        if (sorted_sides[c].fetch_add(1, std::memory_order_acq_rel) == 0) return;
        const sorting::SentinelRuns<K, +1> runs(in.segment(c), out.segment(c));
        best.accuracy[c] = sweep(runs, ni, no, best.winners[c], scratch.tables);
    });
    return best;
}

#ifdef TFMIA_HAVE_CUDA
// Same result, the sorting and run-length counting done on the GPU.
template <class T>
ClassBest<key_t<T>> best_per_class_cuda(const Sides<T>& s) {
    using K = key_t<T>;
    std::vector<K> in(s.n_in), out(s.n_out);
    std::transform(s.in, s.in + s.n_in, in.begin(), to_key<T>);
    std::transform(s.out, s.out + s.n_out, out.begin(), to_key<T>);
    const auto runs = cuda::labelled_runs(in.data(), s.in_labels, in.size(), out.data(), s.out_labels, out.size());
    ClassBest<K> best(s.num_classes);
    RatioTables tables;
    std::size_t begin = 0;
    while (begin < runs.label.size()) {
        const std::int64_t c = runs.label[begin];
        std::size_t end = begin;
        std::int64_t ni = 0, no = 0;
        for (; end < runs.label.size() && runs.label[end] == c; ++end) {
            ni += runs.n_a[end];
            no += runs.n_b[end];
        }
        if (ni > 0 && no > 0) {
            sorting::ArrayRuns<K> class_runs(runs.key.data() + begin, runs.n_a.data() + begin,
                                             runs.n_b.data() + begin, end - begin);
            best.accuracy[c] = sweep(class_runs, ni, no, best.winners[c], tables);
        }
        begin = end;
    }
    return best;
}
#endif

template <class T>
ClassBest<key_t<T>> best_per_class(const Sides<T>& s, bool use_cuda) {
#ifdef TFMIA_HAVE_CUDA
    if (use_cuda) return best_per_class_cuda(s);
#else
    if (use_cuda) fail("device='cuda' is not available: tfmia was built without CUDA");
#endif
    return best_per_class_cpu(s);
}

// Resolves each open class's threshold to the first element, in the order
// given, whose key is one of the class's winners (the reference's first
// maximiser); the element itself is returned, so -0.0 stays -0.0.  Classes
// with a single winning value compare values (equal values <=> equal keys).
template <class T>
void first_winners(const T* values, const std::int64_t* labels, std::int64_t n,
                   const std::vector<std::vector<key_t<T>>>& winners, std::vector<char>& open, std::int64_t& n_open,
                   double* threshold) {
    const std::size_t num_classes = winners.size();
    std::vector<T> only(num_classes);
    std::vector<char> several(num_classes);
    for (std::size_t c = 0; c < num_classes; ++c) {
        if (!open[c]) continue;
        several[c] = winners[c].size() > 1;
        only[c] = sorting::from_key<T>(winners[c][0]);
    }
    for (std::int64_t i = 0; i < n && n_open > 0; ++i) {
        const std::int64_t c = labels ? labels[i] : 0;
        if (!open[c]) continue;
        const T x = values[i];
        const bool hit = several[c] ? std::binary_search(winners[c].begin(), winners[c].end(), to_key(x))
                                    : x == only[c];
        if (hit) {
            threshold[c] = static_cast<double>(x);
            open[c] = 0;
            --n_open;
        }
    }
}

struct Fit {
    std::vector<double> threshold, accuracy;
    std::vector<char> fallback;
    double global_threshold = kNaN, global_accuracy = kNaN;
    bool has_global = false;
};

// Thresholds of the classes given their ClassBest (fallback classes stay NaN).
template <class T>
void resolve(const Sides<T>& s, const ClassBest<key_t<T>>& best, double* threshold, std::vector<char>& open) {
    std::int64_t n_open = std::count(open.begin(), open.end(), 1);
    first_winners(s.in, s.in_labels, s.n_in, best.winners, open, n_open, threshold);
    first_winners(s.out, s.out_labels, s.n_out, best.winners, open, n_open, threshold);
}

// The fit of the kernels' classes (checked entries); the global threshold too
// when want_global or some class falls back.
template <class T>
Fit fit(const Sides<T>& s, bool want_global, bool use_cuda) {
    const auto best = best_per_class(s, use_cuda);
    Fit f;
    f.accuracy = best.accuracy;
    f.threshold.assign(s.num_classes, kNaN);
    f.fallback.resize(s.num_classes);
    std::vector<char> open(s.num_classes);
    for (std::int64_t c = 0; c < s.num_classes; ++c) {
        f.fallback[c] = std::isnan(best.accuracy[c]);
        open[c] = !f.fallback[c];
    }
    resolve(s, best, f.threshold.data(), open);
    const bool any_fallback = std::find(f.fallback.begin(), f.fallback.end(), 1) != f.fallback.end();
    if (want_global || any_fallback) {
        const Sides<T> pooled = s.pooled();
        const auto global = best_per_class(pooled, use_cuda);
        std::vector<char> global_open(1, 1);
        resolve(pooled, global, &f.global_threshold, global_open);
        f.global_accuracy = global.accuracy[0];
        f.has_global = true;
        for (std::int64_t c = 0; c < s.num_classes; ++c)
            if (f.fallback[c]) f.threshold[c] = f.global_threshold;
    }
    return f;
}

const std::int64_t* optional_labels(const py::object& labels, const char* name, py::ssize_t n, const char* values_name) {
    if (labels.is_none()) return nullptr;
    const py::array arr = as_array(labels, name);
    const std::int64_t* ptr = labels_ptr(arr, name);
    require_length(arr, name, n, values_name);
    return ptr;
}

// The fit of every class in [0, num_classes), in the kernels' numbering
// (ClassMap) with the map to the labels.
struct MappedFit {
    Fit fit;
    ClassMap classes;
};

template <class T>
MappedFit fit_arrays(const py::array& values_in, const std::int64_t* labels_in, const py::array& values_out,
                     const std::int64_t* labels_out, std::int64_t num_classes, bool want_global, bool use_cuda) {
    const Sides<T> s{static_cast<const T*>(values_in.data()), labels_in, values_in.shape(0),
                     static_cast<const T*>(values_out.data()), labels_out, values_out.shape(0), num_classes};
    py::gil_scoped_release release;
    const std::int64_t largest_in = check_entries(s.in, s.in_labels, s.n_in, num_classes, "values_in", "labels_in");
    const std::int64_t largest_out =
        check_entries(s.out, s.out_labels, s.n_out, num_classes, "values_out", "labels_out");
    ClassMap classes({{s.in_labels, s.n_in, largest_in}, {s.out_labels, s.n_out, largest_out}});
    const Sides<T> mapped{s.in, classes.labels(0), s.n_in, s.out, classes.labels(1), s.n_out, classes.size()};
    // Classes no label names fall back to the global threshold.
    const bool absent_classes = classes.size() < num_classes;
    return {fit(mapped, want_global || absent_classes, use_cuda), std::move(classes)};
}

py::tuple fit_thresholds(const py::array& values_in, const py::object& labels_in, const py::array& values_out,
                         const py::object& labels_out, std::int64_t num_classes, bool want_global, bool use_cuda) {
    require_num_classes(num_classes);
    const py::ssize_t n_in = vector_length(values_in, "values_in");
    const py::ssize_t n_out = vector_length(values_out, "values_out");
    require_nonempty(values_in, "values_in");
    require_nonempty(values_out, "values_out");
    require_same_float_type(values_out, "values_out", values_in, "values_in");
    if (labels_in.is_none() != labels_out.is_none()) fail("labels_in and labels_out must both be given or both be None");
    if (labels_in.is_none() && num_classes != 1) fail("num_classes must be 1 without labels");
    const std::int64_t* lin = optional_labels(labels_in, "labels_in", n_in, "values_in");
    const std::int64_t* lout = optional_labels(labels_out, "labels_out", n_out, "values_out");

    const MappedFit mf = float_type(values_in, "values_in") == FloatType::f32
                             ? fit_arrays<float>(values_in, lin, values_out, lout, num_classes, want_global, use_cuda)
                             : fit_arrays<double>(values_in, lin, values_out, lout, num_classes, want_global, use_cuda);
    const Fit& f = mf.fit;

    // Classes the labels do not name: the global threshold, accuracy NaN, fallback.
    py::array_t<double> threshold(num_classes), accuracy(num_classes);
    py::array_t<bool> fallback(num_classes);
    double* thr = threshold.mutable_data();
    double* acc = accuracy.mutable_data();
    bool* fb = fallback.mutable_data();
    std::fill_n(thr, num_classes, f.global_threshold);
    std::fill_n(acc, num_classes, kNaN);
    std::fill_n(fb, num_classes, true);
    for (std::int64_t k = 0; k < mf.classes.size(); ++k) {
        const std::int64_t c = mf.classes.external(k);
        thr[c] = f.threshold[k];
        acc[c] = f.accuracy[k];
        fb[c] = f.fallback[k];
    }
    py::object global_threshold = py::none(), global_accuracy = py::none();
    if (f.has_global) {
        global_threshold = py::float_(f.global_threshold);
        global_accuracy = py::float_(f.global_accuracy);
    }
    return py::make_tuple(threshold, accuracy, fallback, global_threshold, global_accuracy);
}

template <class T>
void apply(const T* values, const std::int64_t* labels, std::int64_t n, const double* thresholds,
           std::int64_t num_classes, bool* member) {
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n >= kParallelMinWork)
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = labels[i];
        const T v = values[i];
        if (c < 0 || c >= num_classes || !std::isfinite(v)) {
            bad = 1;
            member[i] = false;
        } else {
            member[i] = static_cast<double>(v) >= thresholds[c];
        }
    }
    if (bad) raise_first_bad_entry(values, labels, n, num_classes, "values", "labels");
}

py::array_t<bool> apply_thresholds(const py::array& values, const py::array& labels, const py::array& thresholds) {
    const py::ssize_t n = vector_length(values, "values");
    const std::int64_t* lab = labels_ptr(labels, "labels");
    require_length(labels, "labels", n, "values");
    if (!py::isinstance<py::array_t<double>>(thresholds))
        fail("thresholds must be a float64 array, got dtype " + std::string(py::str(thresholds.dtype())));
    const py::ssize_t num_classes = vector_length(thresholds, "thresholds");
    require_nonempty(thresholds, "thresholds");
    const double* thr = static_cast<const double*>(thresholds.data());
    for (py::ssize_t c = 0; c < num_classes; ++c)
        if (std::isnan(thr[c])) fail("thresholds must not contain NaN");
    const FloatType type = float_type(values, "values");
    py::array_t<bool> member(n);
    bool* out = member.mutable_data();
    {
        py::gil_scoped_release release;
        if (type == FloatType::f32)
            apply(static_cast<const float*>(values.data()), lab, n, thr, num_classes, out);
        else
            apply(static_cast<const double*>(values.data()), lab, n, thr, num_classes, out);
    }
    return member;
}

}  // namespace

void register_thresholds(py::module_& m) {
    m.def("fit_thresholds", &fit_thresholds, py::arg("values_in"), py::arg("labels_in"), py::arg("values_out"),
          py::arg("labels_out"), py::arg("num_classes"), py::arg("want_global"), py::arg("use_cuda"),
          "Song & Mittal's balanced-accuracy thresholds per class, bit-exact, O(N log N).\n\n"
          "Returns (thresholds[C], balanced_accuracy[C], fallback[C], global_threshold, global_accuracy);\n"
          "labels None means one class.  Classes lacking members or non-members take the global\n"
          "threshold (fallback True, accuracy NaN); the global fit is returned when want_global\n"
          "is true or some class falls back, else None.");
    m.def("apply_thresholds", &apply_thresholds, py::arg("values"), py::arg("labels"), py::arg("thresholds"),
          "member[i] = values[i] >= thresholds[labels[i]] (compared in float64).");
}

}  // namespace tfmia
