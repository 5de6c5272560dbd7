// One registration function per kernel family (see module.cpp).
#pragma once

#include <pybind11/pybind11.h>

namespace tfmia {
void register_build_info(pybind11::module_& m);
void register_signals(pybind11::module_& m);
void register_thresholds(pybind11::module_& m);
void register_roc(pybind11::module_& m);
void register_gradstats(pybind11::module_& m);
void register_bisection(pybind11::module_& m);
void register_risk(pybind11::module_& m);
void register_rmia(pybind11::module_& m);
}  // namespace tfmia
