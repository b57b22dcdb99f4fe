#pragma once
// The right OpenBLAS kernels for the CPU that runs them.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels once, when it loads, from the CPU's
// family and model. A CPU newer than the library (Emerald Rapids under Debian 12's OpenBLAS
// 0.3.21) is not recognized, and OpenBLAS falls back to its generic Prescott (SSE3) kernels:
// about four times slower than its AVX-512 ones on the same machine. The choice can be changed
// only before OpenBLAS loads, through the OPENBLAS_CORETYPE environment variable, so a program
// that finds generic kernels on a CPU with AVX2 and FMA (or AVX-512) starts itself again, once,
// with the matching core set, and says so in one line.
//
// One more case, measured: on AMD's Zen 3 (family 25 model 1, AVX2, 2026-12-02, OpenBLAS 0.3.21)
// OpenBLAS picks its Zen kernels, and its Haswell kernels are faster there: the sgemm limit of
// the convolutional networks' products 18 % higher, their training step 4-9 % faster, the MLPs'
// the same (its Zen beta kernel, which clears C before a product, took 11 % of ResNet-20's
// step; Haswell's is a memset). So an AMD CPU with AVX2 and without AVX-512 gets Haswell's
// kernels too (docs/performance.md, "Haswell's kernels on Zen 3").
//
//   int main(int argc, char** argv) {
//       bnlab::select_blas_kernels(argv);  // first: it may start the program again
//       ...
//
// The environment decides, besides the CPU:
//   OPENBLAS_CORETYPE      a core the user chose is kept, even a generic one (with a note);
//   BNLAB_BLAS_CORE=keep   never switch: run what OpenBLAS chose (to compare kernels);
//   BNLAB_BLAS_CORE=auto   switch away from a replaced core even when OPENBLAS_CORETYPE names it.

#include <string>

namespace bnlab {

// What the CPU's vector units can run, as CPUID and the operating system report them.
struct CpuInfo {
    std::string vendor;         // "GenuineIntel", "AuthenticAMD"
    int family = 0, model = 0;  // display family and model (CPUID leaf 1 with its extensions)
    bool avx = false;           // AVX, with the YMM registers saved by the OS
    bool avx2_fma = false;      // AVX2 and FMA: what OpenBLAS's Haswell and Zen kernels use
    bool avx512 = false;        // AVX-512 F, CD, BW, DQ and VL with the ZMM registers saved:
                                // what its SkylakeX kernels use
    bool avx512_bf16 = false;   // and AVX-512 BF16: its Cooperlake kernels
    // "GenuineIntel family 6 model 207 (AVX2 FMA AVX-512 BF16)"
    std::string describe() const;
};

// The CPU running this process (on other architectures than x86-64, no vector features).
const CpuInfo& cpu_info();

// The OpenBLAS core that matches `cpu`'s vector units: "Cooperlake", "SkylakeX" or "Haswell"
// (Intel's and AMD's AVX2 CPUs); empty when the CPU has neither AVX2 with FMA nor AVX-512.
std::string matching_blas_core(const CpuInfo& cpu);

// Whether OpenBLAS's kernels named `core` are older than AVX2 (Prescott, Core2, Nehalem,
// Sandybridge, Bulldozer, …): generic, and slow on a CPU that has AVX2.
bool is_generic_blas_core(const std::string& core);

// Whether select_blas_kernels replaces `core` by matching_blas_core(cpu): a generic core, and
// the Zen core on a CPU whose match is Haswell.
bool is_replaced_blas_core(const std::string& core, const CpuInfo& cpu);

// The environment variables select_blas_kernels reads (null when unset).
struct BlasEnvironment {
    const char* openblas_coretype = nullptr;  // OPENBLAS_CORETYPE
    const char* bnlab_blas_core = nullptr;    // BNLAB_BLAS_CORE: "auto" or "keep"
    const char* switched_from = nullptr;      // BNLAB_BLAS_SWITCHED_FROM: set by the restart
};

// What select_blas_kernels does in a process whose OpenBLAS runs `running_core`.
struct BlasKernelChoice {
    bool restart = false;  // start the program again with OPENBLAS_CORETYPE=core
    std::string core;      // the core to restart with
    std::string message;   // one line to print on stderr, or empty
};
// Throws std::invalid_argument for a BNLAB_BLAS_CORE other than auto or keep.
BlasKernelChoice choose_blas_kernels(const std::string& running_core, const CpuInfo& cpu,
                                     const BlasEnvironment& environment);

// Call first in main (before MPI_Init, threads or files): when OpenBLAS runs a replaced core
// (generic kernels on a CPU that has better ones, or Zen's where Haswell's are faster), starts the
// program again with OPENBLAS_CORETYPE set, and does not return; the restarted program prints one
// line saying so. Otherwise returns at once. `argv` is main's (null-terminated, as main gets it).
// Prints one line and exits with status 2 for a bad BNLAB_BLAS_CORE.
void select_blas_kernels(char** argv);

// Called by bnlab on its first matrix product: prints once, on stderr, how to get the right
// kernels when OpenBLAS runs generic ones on a better CPU and select_blas_kernels was not called.
void warn_once_if_generic_blas_kernels();

}  // namespace bnlab
