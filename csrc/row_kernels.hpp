// The vectorised CPU row kernels, compiled once per instruction set.
//
// Kernels on simd::vdouble must be compiled for the instruction set they run
// on (see simd.hpp), so their code lives in row_kernels_impl.hpp and is
// compiled by one small translation unit per x86-64 level:
//
//   rows_isa.cpp           baseline (SSE2 on x86-64, the default elsewhere), and
//                          the dispatcher below
//   rows_isa_avx_fma.cpp   AVX + FMA (x86-64-v2 plus AVX/FMA, e.g. AMD Piledriver)
//   rows_isa_avx2.cpp      x86-64-v3: AVX2 + FMA
//   rows_isa_avx512.cpp    x86-64-v4: AVX-512 F/BW/DQ/VL
//
// Each exports a RowKernels table; row_kernels() picks the best one this CPU
// supports when first called.  The build stays portable (no -march=native) and
// still uses the wide units of the machine it runs on.
//
// This header holds only declarations and plain structs, so that the
// per-instruction-set files can include it before switching targets: any
// always-inline function defined before the switch could not be inlined into
// their kernels when the build's own flags exceed the target (-march=native).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace tfmia::gradstats {
struct Moments;  // moments.hpp
}

namespace tfmia {

// Per-row outputs of the fused signals kernel.
template <class T>
struct SignalsOutputs {
    T* loss;
    T* confidence;
    T* max;
    T* sd;
    T* entropy;
    T* modified_entropy;
    bool* correct;
    T* logit_confidence;
};

template <class T>
struct SignalsArgs {
    const T* preds;  // (n, c), C-contiguous
    const std::int64_t* labels;
    std::int64_t n, c;
    bool from_logits;
    double sum_tol;  // < 0: no row-sum check
    bool reference;  // probabilities only: log(1 - p) of 1 - p rounded first (signals_row.hpp)
    SignalsOutputs<T> out;
};

// Doubles of per-thread scratch the signals kernel needs for c classes: two
// c x lanes blocks, lanes <= 8.
constexpr std::int64_t signals_scratch(std::int64_t c) { return 16 * c; }

// The vecmath.hpp functions the testing hook exposes; log1m with floor 1e-30,
// pair_log / pair_log1m the two results of log_and_log1m(x, x, 1e-30).
enum class VecmathFn { exp, log, log1p, log1m, log1m_half, pair_log, pair_log1m };
constexpr const char* kVecmathNames[] = {"exp", "log", "log1p", "log1m", "log1m_half", "pair_log", "pair_log1m"};

struct RowKernels {
    const char* isa;
    // Signals of rows [begin, end); returns the first invalid row, or -1.
    std::int64_t (*signals_f32)(const SignalsArgs<float>& a, std::int64_t begin, std::int64_t end, double* scratch);
    std::int64_t (*signals_f64)(const SignalsArgs<double>& a, std::int64_t begin, std::int64_t end,
                                double* scratch);
    // Summary of x[0 .. len); false if x holds NaN or Inf.
    bool (*moments_f32)(const float* x, std::int64_t len, gradstats::Moments& out);
    bool (*moments_f64)(const double* x, std::int64_t len, gradstats::Moments& out);
    // Testing hook: y = fn(x) elementwise through the SIMD lanes.
    void (*vecmath)(VecmathFn fn, const double* x, double* y, std::int64_t n);
};

// The tables compiled into this build (nullptr where not built for this CPU family).
extern const RowKernels kRowKernelsBaseline;
extern const RowKernels* const kRowKernelsAvxFma;
extern const RowKernels* const kRowKernelsAvx2;
extern const RowKernels* const kRowKernelsAvx512;

// The kernels in use: by default the widest this CPU runs.
const RowKernels& row_kernels();

// The instruction sets of the kernels this build has and this CPU runs, widest first.
std::vector<std::string> supported_row_isas();

// Switches to the kernels of one instruction set ("baseline", "avx_fma",
// "avx2", "avx512"); std::invalid_argument (ValueError) if this CPU or build
// lacks it.  For tests, and for the environment variable below.
void use_row_kernels(const std::string& isa);

// The environment variable that forces the kernels of one instruction set
// (e.g. TFMIA_ROW_ISA=avx2, to run AVX2 code on an AVX-512 machine), read once
// when tfmia._core is loaded; unset or empty: the widest this CPU runs.
constexpr const char* kRowIsaVariable = "TFMIA_ROW_ISA";

// Applies kRowIsaVariable if set; std::invalid_argument naming the variable
// if its value is not a build of this module or this CPU cannot run it.
void use_row_kernels_from_environment();

}  // namespace tfmia
