#include "framework/blas_threads.hpp"

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

void set_blas_threads(int threads) {
    if (threads < 0)
        throw std::invalid_argument("threads must be 0 (OpenBLAS's default) or positive, got " +
                                    std::to_string(threads));
    if (threads > 0) openblas_set_num_threads(threads);
}

int blas_threads() {
    return openblas_get_num_threads();
}

std::string blas_core_name() {
    return openblas_get_corename();
}

std::string blas_config() {
    return openblas_get_config();
}

}  // namespace bnlab
