// The tfmia._core extension: registers every kernel family.  Each family lives
// in its own translation unit and exposes a register_*(module) function.
#include "common.hpp"
#include "registry.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "tfmia's batched numeric kernels (numpy in, numpy out; no TensorFlow inside)";
    tfmia::register_build_info(m);
    tfmia::register_signals(m);
    tfmia::register_thresholds(m);
    tfmia::register_roc(m);
    tfmia::register_gradstats(m);
    tfmia::register_bisection(m);
    tfmia::register_risk(m);
    tfmia::register_rmia(m);
}
