// Argument checks shared by the sorting kernels (thresholds, ROC, risk
// histograms): 1-D C-contiguous vectors, matching lengths, labels in range,
// boolean membership.  Each failure is a ValueError naming the argument.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

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

inline void require_num_classes(std::int64_t num_classes) {
    if (num_classes < 1) fail("num_classes must be >= 1, got " + std::to_string(num_classes));
}

[[noreturn]] inline void fail_label(const char* name, std::int64_t label, std::int64_t num_classes) {
    fail(std::string(name) + " must be in [0, num_classes=" + std::to_string(num_classes) + "), found " +
         std::to_string(label));
}

[[noreturn]] inline void fail_nonfinite(const char* name) {
    fail(std::string(name) + " must be finite (found NaN or Inf)");
}

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
