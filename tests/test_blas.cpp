// Matrix products on bnlab's threads: every block lands where it belongs, whatever the split.
#include <vector>

#include "framework/blas_kernels.hpp"
#include "framework/blas_threads.hpp"
#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

// Small integers, so that every product and sum below is exact in float and the comparison
// need not allow for the order in which BLAS adds.
Matrix<float> integer_matrix(std::size_t rows, std::size_t cols, int seed) {
    Matrix<float> matrix = xt::empty<float>({rows, cols});
    for (std::size_t i = 0; i < matrix.size(); ++i)
        matrix.data()[i] = float(int((i * 7 + std::size_t(seed) * 13) % 5) - 2);
    return matrix;
}

// alpha * op(a) op(b) + beta * c, by the definition.
Matrix<float> reference_product(const Matrix<float>& a, bool transpose_a, const Matrix<float>& b,
                                bool transpose_b, const Matrix<float>& c, float alpha, float beta) {
    Matrix<float> result = c;
    const std::size_t k = transpose_a ? a.shape(0) : a.shape(1);
    for (std::size_t i = 0; i < c.shape(0); ++i)
        for (std::size_t j = 0; j < c.shape(1); ++j) {
            float sum = 0.0f;
            for (std::size_t l = 0; l < k; ++l)
                sum += (transpose_a ? a(l, i) : a(i, l)) * (transpose_b ? b(j, l) : b(l, j));
            result(i, j) = alpha * sum + beta * c(i, j);
        }
    return result;
}

}  // namespace

TEST_CASE("gemm gives the exact product on 1, 2, 3 and 8 threads, split by columns or by rows") {
    ThreadsGuard guard;
    struct Shape {
        std::size_t m, n, k;
    };
    // 784 x 100 x 60 (9.4 Mflop): columns, in blocks of 16 with a ragged last one, on 2 and 3
    // threads; rows on 8, which its 7 column blocks would not go round. 128 x 10 x 256: too few
    // columns, so rows, and at most 3 parts, each needing 2e5 flops. 4 x 4 x 4: too small to
    // share. 3 x 24 x 20000: fewer column blocks than parts and fewer rows than threads, so one
    // row each on 3 and on 8 threads.
    for (const Shape& shape :
         {Shape{784, 100, 60}, Shape{128, 10, 256}, Shape{4, 4, 4}, Shape{3, 24, 20000}})
        for (int threads : {1, 2, 3, 8})
            for (bool transpose_a : {false, true})
                for (bool transpose_b : {false, true}) {
                    CAPTURE(shape.m);
                    CAPTURE(shape.n);
                    CAPTURE(threads);
                    CAPTURE(transpose_a);
                    CAPTURE(transpose_b);
                    set_threads(threads);
                    const Matrix<float> a = transpose_a ? integer_matrix(shape.k, shape.m, 1)
                                                        : integer_matrix(shape.m, shape.k, 1);
                    const Matrix<float> b = transpose_b ? integer_matrix(shape.n, shape.k, 2)
                                                        : integer_matrix(shape.k, shape.n, 2);
                    Matrix<float> c = integer_matrix(shape.m, shape.n, 3);
                    const Matrix<float> expected =
                        reference_product(a, transpose_a, b, transpose_b, c, 2.0f, -1.0f);
                    gemm(a, transpose_a, b, transpose_b, c, 2.0f, -1.0f);
                    CHECK(c == expected);
                }
}

TEST_CASE("gemm rejects operands whose shapes do not multiply into the result") {
    const Matrix<float> a = xt::zeros<float>({4, 3}), b = xt::zeros<float>({2, 5});
    Matrix<float> c = xt::zeros<float>({4, 5});
    CHECK(message_of([&] { gemm(a, false, b, false, c); }) ==
          "gemm: op(a) [4, 3] times op(b) [2, 5] cannot give a result of [4, 5]");
    Matrix<float> wrong = xt::zeros<float>({4, 4});
    CHECK(message_of([&] { gemm(a, false, b, true, wrong); }) ==
          "gemm: op(a) [4, 3] times op(b) [5, 2] cannot give a result of [4, 4]");
}

TEST_CASE("Thread counts: set, OpenBLAS's default for 0, OpenBLAS's own pool kept at one") {
    ThreadsGuard guard;
    set_threads(3);
    CHECK(thread_count() == 3);
    CHECK(openblas_threads() == 1);
    set_threads(0);
    CHECK(thread_count() >= 1);
    CHECK(openblas_threads() == 1);
    CHECK(message_of([] { set_threads(-1); }) ==
          "threads must be 0 (OpenBLAS's default) or positive, got -1");
}

// What select_blas_kernels decides, for CPUs this machine is not (framework/blas_kernels.hpp).
TEST_CASE("the generic kernels are replaced by the CPU's own, and Zen's by Haswell's") {
    CpuInfo emerald_rapids{"GenuineIntel", 6, 207, true, true, true, true};
    CpuInfo skylake_x{"GenuineIntel", 6, 85, true, true, true, false};
    CpuInfo zen3{"AuthenticAMD", 25, 1, true, true, false, false};
    CpuInfo haswell{"GenuineIntel", 6, 63, true, true, false, false};
    CpuInfo old{"GenuineIntel", 6, 42, true, false, false, false};
    CHECK(matching_blas_core(emerald_rapids) == "Cooperlake");
    CHECK(matching_blas_core(skylake_x) == "SkylakeX");
    CHECK(matching_blas_core(zen3) == "Haswell");
    CHECK(matching_blas_core(haswell) == "Haswell");
    CHECK(matching_blas_core(old).empty());
    CHECK(emerald_rapids.describe() ==
          "GenuineIntel family 6 model 207 (AVX AVX2 FMA AVX-512 BF16)");
    for (const char* generic : {"Prescott", "Core2", "Nehalem", "Sandybridge", "Bulldozer"})
        CHECK(is_generic_blas_core(generic));
    for (const char* modern : {"Haswell", "Zen", "SkylakeX", "Cooperlake"})
        CHECK_FALSE(is_generic_blas_core(modern));

    const BlasEnvironment nothing_set{};
    // OpenBLAS's fallback on a CPU it does not know: restart with the matching core.
    BlasKernelChoice choice = choose_blas_kernels("Prescott", emerald_rapids, nothing_set);
    CHECK(choice.restart);
    CHECK(choice.core == "Cooperlake");
    CHECK(choose_blas_kernels("Sandybridge", zen3, nothing_set).core == "Haswell");
    // OpenBLAS's own choice on Zen 3, slower there than its Haswell kernels.
    CHECK(is_replaced_blas_core("Zen", zen3));
    choice = choose_blas_kernels("Zen", zen3, nothing_set);
    CHECK(choice.restart);
    CHECK(choice.core == "Haswell");
    CHECK(choice.message.empty());
    // A core that already matches, or a CPU with nothing better: nothing to do, nothing said.
    // Zen's kernels on an AVX-512 CPU are not replaced: not measured.
    for (const auto& [core, cpu] : {std::pair{"SkylakeX", emerald_rapids},
                                    {"Haswell", zen3},
                                    {"Zen", skylake_x},
                                    {"Haswell", skylake_x},
                                    {"Sandybridge", old}}) {
        CAPTURE(core);
        choice = choose_blas_kernels(core, cpu, nothing_set);
        CHECK_FALSE(choice.restart);
        CHECK(choice.message.empty());
    }
    // The user's OPENBLAS_CORETYPE is kept, with a note; BNLAB_BLAS_CORE=auto replaces it.
    choice = choose_blas_kernels("Prescott", skylake_x, {"Prescott", nullptr, nullptr});
    CHECK_FALSE(choice.restart);
    CHECK(choice.message.find("kept as set (BNLAB_BLAS_CORE=auto replaces it)") !=
          std::string::npos);
    choice = choose_blas_kernels("Prescott", skylake_x, {"Prescott", "auto", nullptr});
    CHECK(choice.restart);
    CHECK(choice.core == "SkylakeX");
    // The user's Zen is kept without a note (it costs a few per cent, not a factor).
    choice = choose_blas_kernels("Zen", zen3, {"Zen", nullptr, nullptr});
    CHECK_FALSE(choice.restart);
    CHECK(choice.message.empty());
    CHECK(choose_blas_kernels("Zen", zen3, {"Zen", "auto", nullptr}).core == "Haswell");
    // BNLAB_BLAS_CORE=keep: never.
    for (const auto& [core, cpu] : {std::pair{"Prescott", skylake_x}, {"Zen", zen3}}) {
        choice = choose_blas_kernels(core, cpu, {nullptr, "keep", nullptr});
        CHECK_FALSE(choice.restart);
        CHECK(choice.message.empty());
    }
    // The restarted program says what happened, and never restarts again.
    choice = choose_blas_kernels("SkylakeX", skylake_x, {"SkylakeX", nullptr, "Prescott"});
    CHECK_FALSE(choice.restart);
    CHECK(choice.message ==
          "bnlab: OpenBLAS chose its generic Prescott kernels on this GenuineIntel family 6 "
          "model 85 (AVX AVX2 FMA AVX-512); restarted with OPENBLAS_CORETYPE=SkylakeX "
          "(BNLAB_BLAS_CORE=keep keeps OpenBLAS's choice)");
    choice = choose_blas_kernels("Haswell", zen3, {"Haswell", nullptr, "Zen"});
    CHECK_FALSE(choice.restart);
    CHECK(choice.message ==
          "bnlab: OpenBLAS chose its Zen kernels on this AuthenticAMD family 25 model 1 (AVX "
          "AVX2 FMA), where its Haswell kernels are faster; restarted with "
          "OPENBLAS_CORETYPE=Haswell (BNLAB_BLAS_CORE=keep keeps OpenBLAS's choice)");
    choice = choose_blas_kernels("Prescott", skylake_x, {"SkylakeX", nullptr, "Prescott"});
    CHECK_FALSE(choice.restart);
    CHECK(choice.message.find("but OpenBLAS runs Prescott: its kernels stay slow") !=
          std::string::npos);
    CHECK_THROWS_WITH_AS(choose_blas_kernels("Prescott", skylake_x, {nullptr, "fast", nullptr}),
                         "BNLAB_BLAS_CORE: expected auto or keep, got 'fast'",
                         std::invalid_argument);
}
