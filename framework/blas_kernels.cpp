#include "framework/blas_kernels.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "framework/blas_threads.hpp"

namespace bnlab {
namespace {

// Set by select_blas_kernels: the warning for programs that do not call it stays quiet.
std::atomic<bool> kernels_selected{false};

#if defined(__x86_64__)
// XCR0, the register states the operating system saves on a context switch: vector registers
// it does not save cannot be used, whatever CPUID says.
unsigned long long os_saved_states() {
    unsigned eax = 0, edx = 0;
    __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuInfo read_cpu() {
    CpuInfo cpu;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return cpu;
    const unsigned max_leaf = eax;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    cpu.vendor = vendor;

    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    // Display family and model: the extended fields count only for families 15 (and 6, model).
    const int base_family = int((eax >> 8) & 0xf), base_model = int((eax >> 4) & 0xf);
    cpu.family = base_family == 0xf ? base_family + int((eax >> 20) & 0xff) : base_family;
    cpu.model = base_family == 0x6 || base_family == 0xf
                    ? (int((eax >> 16) & 0xf) << 4) + base_model
                    : base_model;
    const bool fma = ecx & bit_FMA, osxsave = ecx & bit_OSXSAVE, avx = ecx & bit_AVX;
    const unsigned long long states = osxsave ? os_saved_states() : 0;
    const bool ymm_saved = (states & 0x6) == 0x6;    // SSE and AVX state
    const bool zmm_saved = (states & 0xe6) == 0xe6;  // and opmask, ZMM0-15 high, ZMM16-31
    cpu.avx = avx && ymm_saved;
    if (max_leaf < 7) return cpu;

    __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
    cpu.avx2_fma = cpu.avx && fma && (ebx & bit_AVX2);
    const unsigned avx512_skylake =
        bit_AVX512F | bit_AVX512CD | bit_AVX512BW | bit_AVX512DQ | bit_AVX512VL;
    cpu.avx512 = cpu.avx2_fma && zmm_saved && (ebx & avx512_skylake) == avx512_skylake;
    const unsigned subleaves = eax;
    if (cpu.avx512 && subleaves >= 1) {
        __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
        cpu.avx512_bf16 = eax & (1u << 5);  // CPUID.(EAX=7,ECX=1):EAX[5], AVX512_BF16
    }
    return cpu;
}
#else
CpuInfo read_cpu() {
    return {};
}
#endif

// OpenBLAS's x86-64 kernel families from AVX2 on, by the name openblas_get_corename gives.
bool is_avx2_core(const std::string& core) {
    static const char* const cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                        "SapphireRapids"};
    return std::any_of(std::begin(cores), std::end(cores),
                       [&](const char* name) { return core == name; });
}

const char* environment(const char* name) {
    const char* value = std::getenv(name);
    return value && *value ? value : nullptr;
}

BlasEnvironment this_environment() {
    return {environment("OPENBLAS_CORETYPE"), environment("BNLAB_BLAS_CORE"),
            environment("BNLAB_BLAS_SWITCHED_FROM")};
}

}  // namespace

std::string CpuInfo::describe() const {
    std::string features;
    for (const auto& [has, name] : {std::pair{avx, "AVX"}, std::pair{avx2_fma, "AVX2 FMA"},
                                    std::pair{avx512, "AVX-512"}, std::pair{avx512_bf16, "BF16"}})
        if (has) features += std::string(features.empty() ? "" : " ") + name;
    return (vendor.empty() ? std::string("unknown CPU") : vendor) + " family " +
           std::to_string(family) + " model " + std::to_string(model) + " (" +
           (features.empty() ? "no AVX" : features) + ")";
}

const CpuInfo& cpu_info() {
    static const CpuInfo cpu = read_cpu();
    return cpu;
}

std::string matching_blas_core(const CpuInfo& cpu) {
    if (cpu.avx512) return cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
    // AMD's too: on Zen 3 OpenBLAS 0.3.21's Haswell kernels beat its Zen kernels (header).
    if (cpu.avx2_fma) return "Haswell";
    return "";
}

bool is_generic_blas_core(const std::string& core) {
    return !is_avx2_core(core);
}

bool is_replaced_blas_core(const std::string& core, const CpuInfo& cpu) {
    const std::string better = matching_blas_core(cpu);
    if (better.empty() || core == better) return false;
    return is_generic_blas_core(core) || (core == "Zen" && better == "Haswell");
}

BlasKernelChoice choose_blas_kernels(const std::string& running_core, const CpuInfo& cpu,
                                     const BlasEnvironment& environment) {
    const std::string policy = environment.bnlab_blas_core ? environment.bnlab_blas_core : "";
    if (!policy.empty() && policy != "auto" && policy != "keep")
        throw std::invalid_argument("BNLAB_BLAS_CORE: expected auto or keep, got '" + policy + "'");
    const std::string better = matching_blas_core(cpu);
    BlasKernelChoice choice;
    if (environment.switched_from) {
        // The restarted program: say what happened, and whether OpenBLAS took the core.
        const std::string asked =
            environment.openblas_coretype ? environment.openblas_coretype : "(unset)";
        const std::string from = environment.switched_from;
        choice.message =
            "bnlab: OpenBLAS chose its " +
            (is_generic_blas_core(from) ? "generic " + from + " kernels on this " + cpu.describe()
                                        : from + " kernels on this " + cpu.describe() +
                                              ", where its " + better + " kernels are faster") +
            "; restarted with OPENBLAS_CORETYPE=" + asked;
        if (running_core != asked)
            choice.message += ", but OpenBLAS runs " + running_core + ": its kernels stay slow";
        else
            choice.message += " (BNLAB_BLAS_CORE=keep keeps OpenBLAS's choice)";
        return choice;
    }
    if (policy == "keep" || !is_replaced_blas_core(running_core, cpu)) return choice;
    if (environment.openblas_coretype && policy != "auto") {
        // Only a generic core is worth a note: the user's Zen costs a few per cent at most.
        if (!is_generic_blas_core(running_core)) return choice;
        choice.message = "bnlab: OPENBLAS_CORETYPE=" + std::string(environment.openblas_coretype) +
                         " runs OpenBLAS's generic " + running_core + " kernels on this " +
                         cpu.describe() + ", which runs its " + better +
                         " kernels; kept as set (BNLAB_BLAS_CORE=auto replaces it)";
        return choice;
    }
    choice.restart = true;
    choice.core = better;
    return choice;
}

void select_blas_kernels(char** argv) {
    kernels_selected = true;
    BlasKernelChoice choice;
    try {
        choice = choose_blas_kernels(blas_core_name(), cpu_info(), this_environment());
    } catch (const std::invalid_argument& error) {
        std::fprintf(stderr, "%s\n", error.what());
        std::exit(2);
    }
    if (!choice.message.empty()) std::fprintf(stderr, "%s\n", choice.message.c_str());
    // The restarted program's own children (a program it runs) see OPENBLAS_CORETYPE as set.
    unsetenv("BNLAB_BLAS_SWITCHED_FROM");
    if (!choice.restart) return;
    const std::string from = blas_core_name();
    setenv("OPENBLAS_CORETYPE", choice.core.c_str(), 1);
    setenv("BNLAB_BLAS_SWITCHED_FROM", from.c_str(), 1);
    std::fflush(nullptr);
    execv("/proc/self/exe", argv);
    // Only when the program cannot be started again: go on with the slow kernels, and say so.
    const int error = errno;
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("BNLAB_BLAS_SWITCHED_FROM");
    std::fprintf(stderr,
                 "bnlab: OpenBLAS runs its %s kernels on this %s; starting again with "
                 "OPENBLAS_CORETYPE=%s failed (%s), so they stay slow\n",
                 from.c_str(), cpu_info().describe().c_str(), choice.core.c_str(),
                 std::strerror(error));
}

void warn_once_if_generic_blas_kernels() {
    static std::atomic<bool> warned{false};
    if (kernels_selected || warned.exchange(true)) return;
    const char* policy = environment("BNLAB_BLAS_CORE");
    if (policy && std::string(policy) == "keep") return;
    const std::string core = blas_core_name(), better = matching_blas_core(cpu_info());
    if (better.empty() || !is_generic_blas_core(core)) return;
    std::fprintf(stderr,
                 "bnlab: OpenBLAS runs its generic %s kernels on this %s, several times slower "
                 "than its %s kernels: call bnlab::select_blas_kernels(argv) first in main, or "
                 "set OPENBLAS_CORETYPE=%s\n",
                 core.c_str(), cpu_info().describe().c_str(), better.c_str(), better.c_str());
}

}  // namespace bnlab
