// Shared helpers for the tfmia C++ core: argument checking, dtype dispatch and
// OpenMP plumbing.  Nothing here knows about TensorFlow.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef TFMIA_HAVE_OPENMP
#include <omp.h>
#endif

namespace tfmia {

namespace py = pybind11;

// Every user-facing error is a ValueError (pybind11 maps std::invalid_argument
// to ValueError) whose message starts with the argument's name.
[[noreturn]] inline void fail(const std::string& message) { throw std::invalid_argument(message); }

inline void require(bool condition, const std::string& message) {
    if (!condition) fail(message);
}

enum class FloatType { f32, f64 };

// Returns the floating dtype of `a`, or raises naming `name`.  Integer,
// boolean, complex and object arrays are rejected: the Python layer converts
// what it can before calling the core.
inline FloatType float_type(const py::array& a, const char* name) {
    if (py::isinstance<py::array_t<float>>(a)) return FloatType::f32;
    if (py::isinstance<py::array_t<double>>(a)) return FloatType::f64;
    fail(std::string(name) + " must be a float32 or float64 array, got dtype " +
         std::string(py::str(a.dtype())));
}

// obj as a numpy array, or a ValueError naming `name` where numpy cannot make
// one (a ragged list, say).
inline py::array as_array(const py::object& obj, const char* name) {
    try {
        return obj.cast<py::array>();
    } catch (const py::error_already_set&) {
    } catch (const py::cast_error&) {
    }
    fail(std::string(name) + " must be an array, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
}

inline void require_ndim(const py::array& a, const char* name, py::ssize_t ndim) {
    if (a.ndim() != ndim)
        fail(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
             std::to_string(a.ndim()) + "-D");
}

inline void require_c_contiguous(const py::array& a, const char* name) {
    if (!(a.flags() & py::array::c_style))
        fail(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
}

inline void require_nonempty(const py::array& a, const char* name) {
    if (a.size() == 0) fail(std::string(name) + " must not be empty");
}

// int64 labels, 1-D, C-contiguous.
inline const std::int64_t* labels_ptr(const py::array& a, const char* name) {
    if (!py::isinstance<py::array_t<std::int64_t>>(a))
        fail(std::string(name) + " must be an int64 array, got dtype " + std::string(py::str(a.dtype())));
    require_ndim(a, name, 1);
    require_c_contiguous(a, name);
    return static_cast<const std::int64_t*>(a.data());
}

inline int num_threads() {
#ifdef TFMIA_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace tfmia
