#include "framework/blas_threads.hpp"

#include "framework/blas_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <stdexcept>

// OpenBLAS's own extensions to the CBLAS interface. They are declared here rather than taken
// from <cblas.h>, because Debian's alternatives may point that header at another BLAS.
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace bnlab {
namespace {

// OpenBLAS's default thread count, read once, before its pool is set to one thread: on first
// use rather than at start-up, so that OPENBLAS_NUM_THREADS keeps its meaning.
int openblas_default_threads() {
    static const int count = [] {
        warn_once_if_generic_blas_kernels();
        const int openblas_default = openblas_get_num_threads();
        openblas_set_num_threads(1);
        return openblas_default > 0 ? openblas_default : 1;
    }();
    return count;
}

int& team_size() {
    static int size = openblas_default_threads();
    return size;
}

}  // namespace

void set_threads(int threads) {
    if (threads < 0)
        throw std::invalid_argument("threads must be 0 (OpenBLAS's default) or positive, got " +
                                    std::to_string(threads));
    team_size() = threads > 0 ? threads : openblas_default_threads();
}

int thread_count() {
    return team_size();
}

int parts_for(std::size_t count) {
    return int(std::max<std::size_t>(1, std::min<std::size_t>(std::size_t(thread_count()), count)));
}

void run_parts(int parts, std::size_t count, PartBody body) {
    const auto first_of = [&](int part) { return count * std::size_t(part) / std::size_t(parts); };
    if (parts <= 1) {
        body(0, 0, count);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int part = 0; part < parts; ++part)
        body(part, first_of(part), first_of(part + 1));
}

int openblas_threads() {
    openblas_default_threads();  // sets OpenBLAS's pool to one thread if nothing has yet
    return openblas_get_num_threads();
}

std::string blas_core_name() {
    return openblas_get_corename();
}

std::string blas_config() {
    return openblas_get_config();
}

}  // namespace bnlab
