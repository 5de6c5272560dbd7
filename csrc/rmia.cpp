// RMIA scores (Zarifzadeh et al., ICML 2024) without the N x Z matrix.
//
// Inputs are the signals p(.|theta) in [0, 1] (float64; -0.0 is read as
// +0.0, a probability has no sign) of the target and of K reference models
// on N audited records x and Z population records z.  In float64:
//     P      = (0.0 + p_1 + ... + p_K) / K        summed in reference order
//     P      = ((1 + a) / 2) * P + (1 - a) / 2    offline only (no FMA: -ffp-contract=off)
//     ratio  = p / P                             IEEE: p / 0 = inf, 0 / 0 = NaN
//     score(x) = #{z : ratio_x / ratio_z > gamma} / Z.
// Every ratio lies in [0, inf] or is NaN.  For a fixed ratio_x the correctly
// rounded quotient ratio_x / ratio_z is non-increasing in ratio_z over
// [0, inf] (rounding is monotone), and a NaN ratio_z never counts, so the z
// that count are a prefix of the population ratios sorted ascending with the
// NaNs left out.  A binary search over that order with the definition's own
// comparison `ratio_x / ratio_z > gamma` as predicate finds the prefix's
// length: the count is the definition's, bit for bit, in O((N + Z) log Z)
// time and O(N + Z) memory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "buffer.hpp"
#include "common.hpp"
#include "parallel.hpp"
#include "registry.hpp"
#include "sorting.hpp"

namespace tfmia {
namespace {

using Key = sorting::key_t<double>;

// A float64 C-contiguous array of the given shape holding values in [0, 1].
const double* signal_ptr(const py::array& a, const char* name, py::ssize_t rows, py::ssize_t cols, bool matrix) {
    if (!py::isinstance<py::array_t<double>>(a))
        fail(std::string(name) + " must be a float64 array, got dtype " + std::string(py::str(a.dtype())));
    require_ndim(a, name, matrix ? 2 : 1);
    require_c_contiguous(a, name);
    const py::ssize_t want[2] = {rows, cols};
    for (py::ssize_t d = 0; d < a.ndim(); ++d)
        if (a.shape(d) != want[matrix ? d : 1])
            fail(std::string(name) + " has shape " + std::string(py::str(a.attr("shape"))) +
                 ", expected " + (matrix ? "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")"
                                         : "(" + std::to_string(cols) + ",)"));
    const double* p = static_cast<const double*>(a.data());
    const std::int64_t n = static_cast<std::int64_t>(a.size());
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n >= kParallelMinWork)
    for (std::int64_t i = 0; i < n; ++i) bad |= !(p[i] >= 0.0 && p[i] <= 1.0);
    if (bad) {
        const std::int64_t i = std::find_if(p, p + n, [](double v) { return !(v >= 0.0 && v <= 1.0); }) - p;
        const std::string where = matrix ? "[" + std::to_string(i / cols) + ", " + std::to_string(i % cols) + "]"
                                         : "[" + std::to_string(i) + "]";
        fail(std::string(name) + " must hold probabilities in [0, 1], found " + std::to_string(p[i]) + " at " +
             where);
    }
    return p;
}

// Online: in_mask (K, N) bool with every record IN for exactly K / 2 references.
void check_in_mask(const py::array& mask, std::int64_t K, std::int64_t N) {
    if (!py::isinstance<py::array_t<bool>>(mask))
        fail("in_mask must be a bool array, got dtype " + std::string(py::str(mask.dtype())));
    require_ndim(mask, "in_mask", 2);
    require_c_contiguous(mask, "in_mask");
    if (mask.shape(0) != K || mask.shape(1) != N)
        fail("in_mask must have the shape of refs_x (" + std::to_string(K) + ", " + std::to_string(N) + "), got (" +
             std::to_string(mask.shape(0)) + ", " + std::to_string(mask.shape(1)) + ")");
    if (K % 2 != 0)
        fail("in_mask: online RMIA needs an even number of references (each record IN for half), got " +
             std::to_string(K));
    const bool* m = static_cast<const bool*>(mask.data());
    Buffer<std::int64_t> count(N);
    std::fill(count.data(), count.data() + N, 0);
    for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t i = 0; i < N; ++i) count[i] += m[k * N + i];
    for (std::int64_t i = 0; i < N; ++i)
        if (count[i] != K / 2)
            fail("in_mask: record " + std::to_string(i) + " is IN for " + std::to_string(count[i]) + " of the " +
                 std::to_string(K) + " references; online RMIA needs exactly half");
}

// ratio[i] = target[i] / P_i over n records (refs is K x n), see the file comment.
void ratios(const double* target, const double* refs, std::int64_t K, std::int64_t n, bool offline, double a,
            double* ratio) {
    constexpr std::int64_t kBlock = 4096;  // records per task: reference rows are read in cache-sized pieces
    const double high = (1.0 + a) / 2.0, low = (1.0 - a) / 2.0;
    const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (K * n >= kParallelMinWork)
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
        std::fill(ratio + lo, ratio + hi, 0.0);  // 0.0 + (-0.0) = +0.0
        for (std::int64_t k = 0; k < K; ++k)
            for (std::int64_t i = lo; i < hi; ++i) ratio[i] += refs[k * n + i];
        for (std::int64_t i = lo; i < hi; ++i) {
            double P = ratio[i] / static_cast<double>(K);
            if (offline) P = high * P + low;
            ratio[i] = (target[i] + 0.0) / P;
        }
    }
}

py::array_t<double> rmia_scores(const py::array& target_x, const py::array& refs_x, const py::array& target_z,
                                const py::array& refs_z, const py::object& in_mask, double a, double gamma) {
    if (!(a >= 0.0 && a <= 1.0)) fail("a must be in [0, 1], got " + std::to_string(a));
    if (!(std::isfinite(gamma) && gamma > 0.0)) fail("gamma must be a finite number > 0, got " + std::to_string(gamma));
    require_ndim(refs_x, "refs_x", 2);
    require_ndim(refs_z, "refs_z", 2);
    const std::int64_t K = refs_x.shape(0), N = refs_x.shape(1), Z = refs_z.shape(1);
    if (K < 1) fail("refs_x must hold at least one reference model (K >= 1), got K = 0");
    if (N < 1) fail("target_x must hold at least one audited record");
    if (Z < 1) fail("target_z must hold at least one population record");
    if (refs_z.shape(0) != K)
        fail("refs_z has " + std::to_string(refs_z.shape(0)) + " reference models but refs_x has " +
             std::to_string(K));
    const double* tx = signal_ptr(target_x, "target_x", 1, N, false);
    const double* rx = signal_ptr(refs_x, "refs_x", K, N, true);
    const double* tz = signal_ptr(target_z, "target_z", 1, Z, false);
    const double* rz = signal_ptr(refs_z, "refs_z", K, Z, true);
    const bool online = !in_mask.is_none();
    if (online) {
        if (a != 1.0)
            fail("a applies to offline RMIA only (in_mask=None); online P(x) is the mean over the references");
        check_in_mask(in_mask.cast<py::array>(), K, N);
    }

    py::array_t<double> result(N);
    double* score = result.mutable_data();
    {
        py::gil_scoped_release release;
        Buffer<double> ratio_x(N), ratio_z(Z);
        ratios(tx, rx, K, N, !online, a, ratio_x.data());
        ratios(tz, rz, K, Z, !online, a, ratio_z.data());
        // Population ratios sorted ascending as order-preserving keys, NaNs left out.
        Buffer<Key> keys(Z), scratch(Z);
        std::int64_t n_keys = 0;
        for (std::int64_t j = 0; j < Z; ++j)
            if (!std::isnan(ratio_z[j])) keys[n_keys++] = sorting::to_key(ratio_z[j]);
        if (n_keys > 0) sorting::radix_sort(keys.data(), scratch.data(), static_cast<std::size_t>(n_keys));
        const Key* first = keys.data();
        const Key* last = first + n_keys;
        const double total = static_cast<double>(Z);
        const double log_z = std::log2(static_cast<double>(Z) + 1.0);
#pragma omp parallel for schedule(static) if (static_cast<double>(N) * log_z >= kParallelMinWork)
        for (std::int64_t i = 0; i < N; ++i) {
            const double r = ratio_x[i];
            const Key* end = std::partition_point(
                first, last, [r, gamma](Key k) { return r / sorting::from_key<double>(k) > gamma; });
            score[i] = static_cast<double>(end - first) / total;
        }
    }
    return result;
}

}  // namespace

void register_rmia(py::module_& m) {
    m.def("rmia_scores", &rmia_scores, py::arg("target_x"), py::arg("refs_x"), py::arg("target_z"),
          py::arg("refs_z"), py::arg("in_mask"), py::arg("a"), py::arg("gamma"),
          "RMIA score of each audited record: the fraction of population records z with\n"
          "(p(x)/P(x)) / (p(z)/P(z)) > gamma, each comparison exactly as computed in float64 (see\n"
          "tfmia.attacks.rmia.rmia_scores).  float64 signals in [0, 1]; in_mask None (offline, with a)\n"
          "or (K, N) bool with every record IN for exactly half of the references (online).");
}

}  // namespace tfmia
