// OpenMP loop that is safe to throw from: exceptions must not leave an
// OpenMP region, so they are caught and the one of the smallest index is
// rethrown after the loop (the same error whatever the thread timing).
#pragma once

#include <cstdint>
#include <exception>
#include <limits>

#include "common.hpp"

namespace tfmia {

// Loops over less data than this run on one thread: waking the OpenMP team
// costs more than it saves, and far more on a loaded machine.
constexpr std::int64_t kParallelMinWork = std::int64_t(1) << 16;

// Calls body(i, state) for every i in [0, n) with a dynamic schedule, on
// several threads when `parallel` (and OpenMP is available); each thread
// owns one default-constructed `State` (scratch buffers) for all its
// iterations.
template <class State, class Body>
void parallel_for_each(std::int64_t n, bool parallel, Body&& body) {
    std::exception_ptr error;
    std::int64_t error_index = std::numeric_limits<std::int64_t>::max();
#pragma omp parallel if (parallel && n > 1)
    {
        State state{};
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t i = 0; i < n; ++i) {
            try {
                body(i, state);
            } catch (...) {
#pragma omp critical(tfmia_parallel_error)
                if (i < error_index) {
                    error_index = i;
                    error = std::current_exception();
                }
            }
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace tfmia
