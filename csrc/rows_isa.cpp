// The row kernels compiled for the baseline target, and the dispatcher that
// picks the widest build this CPU supports; see row_kernels.hpp.
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "row_kernels.hpp"

#define TFMIA_SIMD_WIDTH 2  // SSE2 on x86-64, NEON on aarch64
#include "row_kernels_impl.hpp"

namespace tfmia {

const RowKernels kRowKernelsBaseline = make_row_kernels("baseline");

namespace {

// Builds available here, widest first, with the CPU test for each.
struct Candidate {
    const RowKernels* kernels;
    bool (*supported)();
};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
bool has_avx512() { return __builtin_cpu_supports("x86-64-v4"); }
bool has_avx2() { return __builtin_cpu_supports("x86-64-v3"); }
bool has_avx_fma() {
    return __builtin_cpu_supports("x86-64-v2") && __builtin_cpu_supports("avx") && __builtin_cpu_supports("fma");
}
#else
bool has_avx512() { return false; }
bool has_avx2() { return false; }
bool has_avx_fma() { return false; }
#endif
bool always() { return true; }

const Candidate kCandidates[] = {
    {kRowKernelsAvx512, has_avx512},
    {kRowKernelsAvx2, has_avx2},
    {kRowKernelsAvxFma, has_avx_fma},
    {&kRowKernelsBaseline, always},
};

const RowKernels* widest_supported() {
    for (const Candidate& c : kCandidates)
        if (c.kernels != nullptr && c.supported()) return c.kernels;
    return &kRowKernelsBaseline;
}

std::atomic<const RowKernels*> g_selected{nullptr};

}  // namespace

const RowKernels& row_kernels() {
    const RowKernels* k = g_selected.load(std::memory_order_acquire);
    if (k == nullptr) {
        k = widest_supported();
        g_selected.store(k, std::memory_order_release);
    }
    return *k;
}

std::vector<std::string> supported_row_isas() {
    std::vector<std::string> names;
    for (const Candidate& c : kCandidates)
        if (c.kernels != nullptr && c.supported()) names.emplace_back(c.kernels->isa);
    return names;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
    return text;
}

// The kernels called isa; otherwise std::invalid_argument, its message naming
// the setting (`what`) and the choices.
const RowKernels* kernels_named(const std::string& isa, const std::string& what) {
    std::vector<std::string> built;
    for (const Candidate& c : kCandidates) {
        if (c.kernels == nullptr) continue;
        if (isa == c.kernels->isa) {
            if (!c.supported())
                throw std::invalid_argument(what + " '" + isa + "' is not supported by this CPU (it runs " +
                                            joined(supported_row_isas()) + ")");
            return c.kernels;
        }
        built.emplace_back(c.kernels->isa);
    }
    throw std::invalid_argument(what + " must be one of the builds in this module (" + joined(built) + "), got '" +
                                isa + "'");
}

}  // namespace

void use_row_kernels(const std::string& isa) { g_selected.store(kernels_named(isa, "isa"), std::memory_order_release); }

void use_row_kernels_from_environment() {
    const char* value = std::getenv(kRowIsaVariable);
    if (value == nullptr || *value == '\0') return;
    g_selected.store(kernels_named(value, kRowIsaVariable), std::memory_order_release);
}

}  // namespace tfmia
