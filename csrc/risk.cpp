// Per-class histogram likelihoods of the privacy risk score (Song & Mittal).
//
// Per true class c the reference bins its shadow members' and non-members'
// values (floored at 1e-10 for log-spaced bins) on shared edges from the
// class's min to max and weighs every value by 1 / (its side's count):
//     h_in  = np.histogram(tr, bins=edges, weights=np.ones_like(tr) / len(tr))[0],
// likewise h_out.  With explicit edges np.histogram takes, block by block of
// 65536 values, the cumulative weight below each edge (a sequential float64
// cumsum of the block's weights, indexed by searchsorted) and returns the
// differences of the running totals.  The same counts and the same additions
// in the same order give the same histograms bit for bit (for float64 values;
// float32 values are binned as numpy would but weighted in float64).
//
// Kernels: risk_ranges (min / max / counts per class, for the edges, which
// the Python layer computes with np.logspace / np.linspace exactly as the
// reference), risk_histograms (counting and weighting), risk_scores (the
// reference's find_index and outward search, then h_in / (h_in + h_out)).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "kernel_args.hpp"
#include "parallel.hpp"
#include "registry.hpp"
#include "risk_kernels.hpp"

#ifdef TFMIA_HAVE_CUDA
#include "cuda/sorting.hpp"
#endif

namespace tfmia {
namespace {

// One side of the shadow data (members or non-members).
template <class T>
struct Side {
    const T* values;
    const std::int64_t* labels;
    std::int64_t n;
    const char* values_name;
    const char* labels_name;
};

template <class T>
Side<T> side_of(const py::array& values, const py::array& labels, const char* values_name, const char* labels_name) {
    const std::int64_t n = vector_length(values, values_name);
    require_nonempty(values, values_name);
    const std::int64_t* lab = labels_ptr(labels, labels_name);
    require_length(labels, labels_name, n, values_name);
    return {static_cast<const T*>(values.data()), lab, n, values_name, labels_name};
}

// Checks the side's values (finite) and labels (in [0, num_classes)); returns the largest label.
template <class T>
std::int64_t check_side(const Side<T>& s, std::int64_t num_classes) {
    return check_entries(s.values, s.labels, s.n, num_classes, s.values_name, s.labels_name);
}

// ---- risk_ranges -------------------------------------------------------

// Per class of the ClassMap: min and max of the (floored) values of both
// sides, and the number of values on each side.
template <class T>
struct Ranges {
    std::vector<T> lo, hi;
    std::vector<std::int64_t> count[2];
};

template <class T>
Ranges<T> class_ranges(const Side<T>& in, const Side<T>& out, const ClassMap& classes, bool floor) {
    const std::int64_t C = classes.size();
    Ranges<T> r;
    std::vector<T> side_lo[2], side_hi[2];
    parallel_for_each<char>(2, in.n + out.n >= kParallelMinWork, [&](std::int64_t k, char&) {
        const Side<T>& s = k == 0 ? in : out;
        const std::int64_t* labels = classes.labels(k);
        r.count[k] = class_sizes(labels, s.n, C);
        side_lo[k].assign(C, std::numeric_limits<T>::infinity());
        side_hi[k].assign(C, -std::numeric_limits<T>::infinity());
        for (std::int64_t i = 0; i < s.n; ++i) {
            const T v = risk::floored(s.values[i], floor);
            const std::int64_t c = labels[i];
            side_lo[k][c] = std::min(side_lo[k][c], v);
            side_hi[k][c] = std::max(side_hi[k][c], v);
        }
    });
    r.lo.resize(C);
    r.hi.resize(C);
    for (std::int64_t c = 0; c < C; ++c) {
        r.lo[c] = std::min(side_lo[0][c], side_lo[1][c]);
        r.hi[c] = std::max(side_hi[0][c], side_hi[1][c]);
    }
    return r;
}

// The ranges of every class in [0, num_classes): +inf / -inf and no values
// for the classes no label names.
template <class T>
py::tuple ranges(const Side<T>& in, const Side<T>& out, std::int64_t num_classes, bool floor) {
    std::optional<ClassMap> classes;
    Ranges<T> r;
    {
        py::gil_scoped_release release;
        const std::int64_t largest_in = check_side(in, num_classes), largest_out = check_side(out, num_classes);
        classes.emplace(std::vector<ClassMap::SideLabels>{{in.labels, in.n, largest_in}, {out.labels, out.n, largest_out}});
        r = class_ranges(in, out, *classes, floor);
    }
    py::array_t<T> lo_arr(num_classes), hi_arr(num_classes);
    py::array_t<std::int64_t> n_in(num_classes), n_out(num_classes);
    T* lo = lo_arr.mutable_data();
    T* hi = hi_arr.mutable_data();
    std::int64_t* count[2] = {n_in.mutable_data(), n_out.mutable_data()};
    std::fill_n(lo, num_classes, std::numeric_limits<T>::infinity());
    std::fill_n(hi, num_classes, -std::numeric_limits<T>::infinity());
    std::fill_n(count[0], num_classes, 0);
    std::fill_n(count[1], num_classes, 0);
    for (std::int64_t k = 0; k < classes->size(); ++k) {
        const std::int64_t c = classes->external(k);
        lo[c] = r.lo[k];
        hi[c] = r.hi[k];
        count[0][c] = r.count[0][k];
        count[1][c] = r.count[1][k];
    }
    return py::make_tuple(lo_arr, hi_arr, n_in, n_out);
}

py::tuple risk_ranges(const py::array& values_in, const py::array& labels_in, const py::array& values_out,
                      const py::array& labels_out, std::int64_t num_classes, bool log_bins) {
    require_num_classes(num_classes);
    require_same_float_type(values_out, "values_out", values_in, "values_in");
    auto run = [&](auto tag) {
        using T = decltype(tag);
        return ranges(side_of<T>(values_in, labels_in, "values_in", "labels_in"),
                      side_of<T>(values_out, labels_out, "values_out", "labels_out"), num_classes, log_bins);
    };
    return float_type(values_in, "values_in") == FloatType::f32 ? run(float{}) : run(double{});
}

// ---- risk_histograms ---------------------------------------------------

// Bin edges: one row of bins + 1 per class, and the pooled row (null when
// no class falls back).
struct Edges {
    const double* rows;
    const double* pooled;
    std::int64_t num_classes;
    int bins;

    const double* row(std::int64_t c) const { return rows + c * (bins + 1); }
};

// The count tables (risk_kernels.hpp) of one side: rows 0..C-1 per class,
// row C pooled over all classes, each row a run of blocks of bins + 2
// counters; and the class sizes.
struct Counted {
    std::vector<std::vector<std::int64_t>> rows;
    std::vector<std::int64_t> size;
};

inline void count_value(std::vector<std::int64_t>& row, std::int64_t block, double v, const double* e, int bins) {
    const std::size_t slots = risk::slots_per_block(bins);
    if (row.size() < (block + 1) * slots) row.resize((block + 1) * slots, 0);
    std::int64_t* counters = row.data() + block * slots;
    ++counters[risk::histogram_slot(v, e, bins)];
    counters[bins + 1] += v <= e[bins];
}

// One pass over one side in input order: each value goes to its class's row
// (block = its position among the class's values / kBlock) and, when there
// is a pooled row, to that one (block = its position / kBlock).
template <class T>
Counted count_cpu(const Side<T>& s, const Edges& edges, bool floor) {
    Counted out{std::vector<std::vector<std::int64_t>>(edges.num_classes + 1),
                class_sizes(s.labels, s.n, edges.num_classes)};
    std::vector<std::int64_t> position(edges.num_classes, 0);
    for (std::int64_t i = 0; i < s.n; ++i) {
        const std::int64_t c = s.labels[i];
        const double v = static_cast<double>(risk::floored(s.values[i], floor));
        count_value(out.rows[c], position[c]++ / risk::kBlock, v, edges.row(c), edges.bins);
        if (edges.pooled) count_value(out.rows[edges.num_classes], i / risk::kBlock, v, edges.pooled, edges.bins);
    }
    return out;
}

#ifdef TFMIA_HAVE_CUDA
// The same tables counted on the GPU (rank within class by a stable sort
// there), in one flat array cut into rows here.
template <class T>
Counted count_cuda(const Side<T>& s, const Edges& edges, bool floor) {
    const std::int64_t C = edges.num_classes;
    Counted out{std::vector<std::vector<std::int64_t>>(C + 1), class_sizes(s.labels, s.n, C)};
    const std::int64_t slots = risk::slots_per_block(edges.bins);
    auto blocks = [](std::int64_t n) { return (n + risk::kBlock - 1) / risk::kBlock; };
    std::vector<std::int64_t> class_start(C + 1, 0), block_offset(C + 2, 0);
    for (std::int64_t c = 0; c < C; ++c) {
        class_start[c + 1] = class_start[c] + out.size[c];
        block_offset[c + 1] = block_offset[c] + blocks(out.size[c]);
    }
    block_offset[C + 1] = block_offset[C] + (edges.pooled ? blocks(s.n) : 0);
    std::vector<std::int64_t> table(block_offset[C + 1] * slots);
    cuda::histogram_counts(s.values, s.labels, s.n, edges.rows, edges.pooled, C, edges.bins, floor,
                           class_start.data(), block_offset.data(), table.data());
    for (std::int64_t r = 0; r <= C; ++r)
        out.rows[r].assign(table.begin() + block_offset[r] * slots, table.begin() + block_offset[r + 1] * slots);
    return out;
}
#endif

// np.histogram's weighted cumulative path for one row holding n values:
// w = 1.0 / n; per block, cum[j] += cw[#{v < e_j}] (cw[#{v <= e_B}] for the
// last edge), cw[k] being the k-th sequential partial sum of w (cumsum);
// h = np.diff(cum).
void finish_histogram(const std::vector<std::int64_t>& row, int bins, std::int64_t n, double* h) {
    const double w = 1.0 / static_cast<double>(n);
    const std::size_t slots = risk::slots_per_block(bins);
    std::vector<double> cum(bins + 1, 0.0);
    for (std::size_t block = 0; block * slots < row.size(); ++block) {
        const std::int64_t* counters = row.data() + block * slots;
        double partial = 0.0;  // cw[taken]
        std::int64_t taken = 0, below = 0;
        for (int j = 0; j <= bins; ++j) {
            const std::int64_t index = j < bins ? (below += counters[j]) : counters[bins + 1];
            for (; taken < index; ++taken) partial += w;
            cum[j] += partial;
        }
    }
    for (int b = 0; b < bins; ++b) h[b] = cum[b + 1] - cum[b];
}

// Counts one side and finishes the histogram of every class holding values
// there (into h, C x bins) and of the pooled row (into pooled, bins).
template <class T>
std::vector<std::int64_t> side_histograms(const Side<T>& s, const Edges& edges, bool floor, bool use_cuda, double* h,
                                          double* pooled) {
#ifdef TFMIA_HAVE_CUDA
    const Counted counted = use_cuda ? count_cuda(s, edges, floor) : count_cpu(s, edges, floor);
#else
    if (use_cuda) fail("device='cuda' is not available: tfmia was built without CUDA");
    const Counted counted = count_cpu(s, edges, floor);
#endif
    for (std::int64_t c = 0; c < edges.num_classes; ++c)
        if (counted.size[c] > 0) finish_histogram(counted.rows[c], edges.bins, counted.size[c], h + c * edges.bins);
    if (edges.pooled) finish_histogram(counted.rows[edges.num_classes], edges.bins, s.n, pooled);
    return counted.size;
}

template <class T>
py::tuple histograms(const Side<T>& in, const Side<T>& out, const Edges& edges, bool floor, bool use_cuda) {
    const std::int64_t C = edges.num_classes;
    const int B = edges.bins;
    py::array_t<double> h_in_arr({C, std::int64_t(B)}), h_out_arr({C, std::int64_t(B)});
    py::array_t<bool> fallback_arr(C);
    double* h[2] = {h_in_arr.mutable_data(), h_out_arr.mutable_data()};
    bool* fallback = fallback_arr.mutable_data();
    {
        py::gil_scoped_release release;
        std::fill(h[0], h[0] + C * B, 0.0);
        std::fill(h[1], h[1] + C * B, 0.0);
        std::vector<double> pooled[2] = {std::vector<double>(B), std::vector<double>(B)};
        std::vector<std::int64_t> size[2];
        check_side(in, C);
        check_side(out, C);
        const bool parallel = !use_cuda && in.n + out.n >= kParallelMinWork;
        parallel_for_each<char>(2, parallel, [&](std::int64_t k, char&) {
            size[k] = side_histograms(k == 0 ? in : out, edges, floor, use_cuda, h[k], pooled[k].data());
        });
        for (std::int64_t c = 0; c < C; ++c) {
            fallback[c] = size[0][c] == 0 || size[1][c] == 0;
            if (!fallback[c]) continue;
            if (!edges.pooled) fail("pooled_edges must be given: some class lacks members or non-members");
            for (int k = 0; k < 2; ++k) std::copy(pooled[k].begin(), pooled[k].end(), h[k] + c * B);
        }
    }
    return py::make_tuple(h_in_arr, h_out_arr, fallback_arr);
}

// Histogram entries are fractions of a side's values: at most 1, up to the
// rounding of a sum of 1 / n over at most 2^53 values.
constexpr double kMaxFraction = 1.0 + 1e-6;

// A float64, C-contiguous table of the given shape with finite entries,
// non-decreasing along rows when `monotone`, in [0, 1] when `fractions`.
const double* table_ptr(const py::array& a, const char* name, std::vector<py::ssize_t> shape, bool monotone,
                        bool fractions) {
    if (!py::isinstance<py::array_t<double>>(a))
        fail(std::string(name) + " must be a float64 array, got dtype " + std::string(py::str(a.dtype())));
    require_c_contiguous(a, name);
    bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t d = 0; same && d < shape.size(); ++d) same = a.shape(d) == shape[d];
    if (!same) fail(std::string(name) + " has the wrong shape");
    const double* p = static_cast<const double*>(a.data());
    const py::ssize_t width = shape.back();
    for (py::ssize_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(p[i])) fail(std::string(name) + " must be finite");
        if (fractions && p[i] < 0) fail(std::string(name) + " must be non-negative");
        if (fractions && p[i] > kMaxFraction) fail(std::string(name) + " must hold histogram fractions (at most 1)");
        if (monotone && i % width > 0 && p[i] < p[i - 1])
            fail(std::string(name) + " must be non-decreasing along each row");
    }
    return p;
}

// The bins of an edge table (C, bins + 1), at most kMaxBins: the count tables
// hold bins + 2 counters per block of risk::kBlock values, so that bound keeps
// them no larger than the values and edges they count.
constexpr std::int64_t kMaxBins = risk::kBlock;

int bins_of(const py::array& edges) {
    if (edges.ndim() != 2 || edges.shape(1) < 2) fail("edges must be 2-D with at least 2 columns (bins >= 1)");
    if (edges.shape(1) - 1 > kMaxBins)
        fail("edges has " + std::to_string(edges.shape(1) - 1) + " bins (columns - 1), more than " +
             std::to_string(kMaxBins));
    require_num_classes(edges.shape(0), "edges' rows (num_classes)");
    return static_cast<int>(edges.shape(1) - 1);
}

py::tuple risk_histograms(const py::array& values_in, const py::array& labels_in, const py::array& values_out,
                          const py::array& labels_out, const py::array& edges, const py::object& pooled_edges,
                          bool log_bins, bool use_cuda) {
    const int bins = bins_of(edges);
    const std::int64_t C = edges.shape(0);
    const Edges e{table_ptr(edges, "edges", {C, bins + 1}, true, false),
                  pooled_edges.is_none()
                      ? nullptr
                      : table_ptr(as_array(pooled_edges, "pooled_edges"), "pooled_edges", {bins + 1}, true, false),
                  C, bins};
    require_same_float_type(values_out, "values_out", values_in, "values_in");
    auto run = [&](auto tag) {
        using T = decltype(tag);
        return histograms(side_of<T>(values_in, labels_in, "values_in", "labels_in"),
                          side_of<T>(values_out, labels_out, "values_out", "labels_out"), e, log_bins, use_cuda);
    };
    return float_type(values_in, "values_in") == FloatType::f32 ? run(float{}) : run(double{});
}

// ---- risk_scores -------------------------------------------------------

template <class T>
void scores_cpu(const T* values, const std::int64_t* labels, std::int64_t n, const double* edges, const double* h_in,
                const double* h_out, std::int64_t C, int B, double odds, double no_evidence, double* out) {
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n >= kParallelMinWork)
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t c = labels[i];
        const T x = values[i];
        if (c < 0 || c >= C || !std::isfinite(x)) {
            bad = 1;
            continue;
        }
        const int bin = risk::find_bin(static_cast<double>(x), edges + c * (B + 1), B);
        out[i] = risk::risk_score(h_in + c * B, h_out + c * B, B, bin, odds, no_evidence);
    }
    if (bad) raise_first_bad_entry(values, labels, n, C, "values", "labels");
}

py::array_t<double> risk_scores(const py::array& values, const py::array& labels, const py::array& edges,
                                const py::array& h_in, const py::array& h_out, double member_prior, bool use_cuda) {
    // (1 - prior) / prior must be a finite positive double: prior not below about 5.6e-309.
    const double odds = (1.0 - member_prior) / member_prior;
    if (!(member_prior > 0.0 && member_prior < 1.0 && std::isfinite(odds)))
        fail("member_prior must be in (0, 1) with (1 - member_prior) / member_prior finite, got " +
             std::to_string(member_prior));
    const int B = bins_of(edges);
    const std::int64_t C = edges.shape(0);
    const double* e = table_ptr(edges, "edges", {C, B + 1}, true, false);
    const double* hi = table_ptr(h_in, "h_in", {C, B}, false, true);
    const double* ho = table_ptr(h_out, "h_out", {C, B}, false, true);
    const std::int64_t n = vector_length(values, "values");
    const std::int64_t* lab = labels_ptr(labels, "labels");
    require_length(labels, "labels", n, "values");
    const FloatType type = float_type(values, "values");
#ifndef TFMIA_HAVE_CUDA
    if (use_cuda) fail("device='cuda' is not available: tfmia was built without CUDA");
#endif
    py::array_t<double> result(n);
    double* out = result.mutable_data();
    auto run = [&](auto tag) {
        using T = decltype(tag);
        const T* v = static_cast<const T*>(values.data());
        py::gil_scoped_release release;
#ifdef TFMIA_HAVE_CUDA
        if (use_cuda) {
            if (!cuda::risk_scores(v, lab, n, e, hi, ho, C, B, odds, member_prior, out))
                raise_first_bad_entry(v, lab, n, C, "values", "labels");
            return;
        }
#endif
        scores_cpu(v, lab, n, e, hi, ho, C, B, odds, member_prior, out);
    };
    if (type == FloatType::f32)
        run(float{});
    else
        run(double{});
    return result;
}

}  // namespace

void register_risk(py::module_& m) {
    m.def("risk_ranges", &risk_ranges, py::arg("values_in"), py::arg("labels_in"), py::arg("values_out"),
          py::arg("labels_out"), py::arg("num_classes"), py::arg("log_bins"),
          "(lo[C], hi[C], n_in[C], n_out[C]): per class the min and max of both sides' values (floored\n"
          "at 1e-10 when log_bins; in the values' dtype, +inf / -inf for empty classes) and the counts.");
    m.def("risk_histograms", &risk_histograms, py::arg("values_in"), py::arg("labels_in"), py::arg("values_out"),
          py::arg("labels_out"), py::arg("edges"), py::arg("pooled_edges"), py::arg("log_bins"),
          py::arg("use_cuda"),
          "(h_in[C, B], h_out[C, B], fallback[C]): Song & Mittal's per-class histograms on the given edges,\n"
          "equal to np.histogram(x, edges, weights=np.ones_like(x) / len(x)) bit for bit for float64\n"
          "values.  Classes lacking members or non-members get the pooled histograms (on\n"
          "pooled_edges, required then) and fallback True.");
    m.def("risk_scores", &risk_scores, py::arg("values"), py::arg("labels"), py::arg("edges"), py::arg("h_in"),
          py::arg("h_out"), py::arg("member_prior"), py::arg("use_cuda"),
          "Privacy risk scores h_in / (h_in + h_out * (1 - prior) / prior) in each value's bin (the\n"
          "reference's find_index and outward search for empty bins; member_prior where every bin is\n"
          "empty).");
}

}  // namespace tfmia
