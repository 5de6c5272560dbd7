// Placeholder registration; the kernels land with their own commit.
#include "common.hpp"
#include "registry.hpp"

namespace tfmia {
void register_signals(py::module_&) {}
}  // namespace tfmia
