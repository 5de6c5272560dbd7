// Argument checks shared by the sorting kernels (thresholds, ROC, risk
// histograms): 1-D C-contiguous vectors, matching lengths, labels in range,
// boolean membership.  Each failure is a ValueError naming the argument.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace tfmia {

// Length of a 1-D C-contiguous array argument.
inline py::ssize_t vector_length(const py::array& a, const char* name) {
    require_ndim(a, name, 1);
    require_c_contiguous(a, name);
    return a.shape(0);
}

inline void require_length(const py::array& a, const char* name, py::ssize_t n, const char* other) {
    if (vector_length(a, name) != n)
        fail(std::string(name) + " has " + std::to_string(a.shape(0)) + " entries but " + other + " has " +
             std::to_string(n));
}

inline void require_same_float_type(const py::array& a, const char* name, const py::array& ref, const char* ref_name) {
    if (float_type(a, name) != float_type(ref, ref_name))
        fail(std::string(name) + " must have the same dtype as " + ref_name + " (" + std::string(py::str(ref.dtype())) +
             "), got " + std::string(py::str(a.dtype())));
}

// bool, 1-D, C-contiguous.
inline const bool* bool_ptr(const py::array& a, const char* name) {
    if (!py::isinstance<py::array_t<bool>>(a))
        fail(std::string(name) + " must be a bool array, got dtype " + std::string(py::str(a.dtype())));
    vector_length(a, name);
    return static_cast<const bool*>(a.data());
}

// The most classes a kernel returns per-class arrays for.  A declared class
// count is checked against it before anything is allocated; per-class working
// memory then follows the classes the labels hold (ClassMap), so only the
// outputs grow with num_classes.
constexpr std::int64_t kMaxClasses = std::int64_t(1) << 24;

inline void require_num_classes(std::int64_t num_classes, const char* name = "num_classes") {
    if (num_classes < 1 || num_classes > kMaxClasses)
        fail(std::string(name) + " must be in [1, 2**24 = " + std::to_string(kMaxClasses) + "], got " +
             std::to_string(num_classes));
}

[[noreturn]] inline void fail_label(const char* name, std::int64_t label, std::int64_t num_classes) {
    fail(std::string(name) + " must be in [0, num_classes=" + std::to_string(num_classes) + "), found " +
         std::to_string(label));
}

[[noreturn]] inline void fail_nonfinite(const char* name) {
    fail(std::string(name) + " must be finite (found NaN or Inf)");
}

// Checks values (finite) and labels (in range, null meaning all 0); returns
// the largest label.  Allocates nothing.
template <class T>
std::int64_t check_entries(const T* values, const std::int64_t* labels, std::int64_t n, std::int64_t num_classes,
                           const char* values_name, const char* labels_name) {
    std::int64_t largest = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(values[i])) fail_nonfinite(values_name);
        const std::int64_t c = labels ? labels[i] : 0;
        if (c < 0 || c >= num_classes) fail_label(labels_name, c, num_classes);
        largest = std::max(largest, c);
    }
    return largest;
}

// The number of labels of each class (labels checked, null meaning all 0).
inline std::vector<std::int64_t> class_sizes(const std::int64_t* labels, std::int64_t n, std::int64_t num_classes) {
    std::vector<std::int64_t> size(num_classes, 0);
    if (!labels) size[0] = n;
    for (std::int64_t i = 0; labels && i < n; ++i) ++size[labels[i]];
    return size;
}

// The classes of checked labels, numbered for the per-class kernels so that
// their memory follows the data rather than a declared num_classes.  While
// the largest label is below the number of labels plus kDenseSlack, kernel
// class k is label k (max label + 1 classes, the labels used as they are);
// beyond that (few records spread over a huge class range) the distinct
// labels, ascending, become classes 0, 1, ... and each side's labels are
// rewritten.  Either way the kernels see O(number of labels) classes.
class ClassMap {
public:
    static constexpr std::int64_t kDenseSlack = 1024;

    // One (labels, n, largest label) per side; labels may be null (all 0).
    struct SideLabels {
        const std::int64_t* labels;
        std::int64_t n;
        std::int64_t largest;
    };

    explicit ClassMap(std::vector<SideLabels> sides) {
        std::int64_t total = 0, largest = 0;
        for (const SideLabels& s : sides) {
            total += s.n;
            largest = std::max(largest, s.largest);
            labels_.push_back(s.labels);
        }
        size_ = largest + 1;
        if (largest < total + kDenseSlack) return;
        for (const SideLabels& s : sides) external_.insert(external_.end(), s.labels, s.labels + s.n);
        std::sort(external_.begin(), external_.end());
        external_.erase(std::unique(external_.begin(), external_.end()), external_.end());
        size_ = static_cast<std::int64_t>(external_.size());
        renumbered_.resize(sides.size());
        for (std::size_t k = 0; k < sides.size(); ++k) {
            renumbered_[k].resize(sides[k].n);
            for (std::int64_t i = 0; i < sides[k].n; ++i)
                renumbered_[k][i] = std::lower_bound(external_.begin(), external_.end(), sides[k].labels[i]) -
                                    external_.begin();
            labels_[k] = renumbered_[k].data();
        }
    }

    // Classes the kernels see.
    std::int64_t size() const { return size_; }
    // The kernels' labels of side k.
    const std::int64_t* labels(std::size_t k) const { return labels_[k]; }
    // The label of kernel class k.
    std::int64_t external(std::int64_t k) const { return external_.empty() ? k : external_[k]; }

private:
    std::int64_t size_ = 1;
    std::vector<const std::int64_t*> labels_;
    std::vector<std::int64_t> external_;
    std::vector<std::vector<std::int64_t>> renumbered_;
};

// Raises for the first non-finite value or out-of-range label; parallel
// kernels flag bad entries as they go and call this to name the culprit.
template <class T>
void raise_first_bad_entry(const T* values, const std::int64_t* labels, std::int64_t n, std::int64_t num_classes,
                           const char* values_name, const char* labels_name) {
    for (std::int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(values[i])) fail_nonfinite(values_name);
        if (labels[i] < 0 || labels[i] >= num_classes) fail_label(labels_name, labels[i], num_classes);
    }
}

}  // namespace tfmia
