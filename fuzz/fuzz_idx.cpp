// Fuzz target: the IDX reader (plain or gzip'd), as load_fashion_mnist uses it.
#include "framework/idx.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bnlab::fuzz::write_input(data, size);
    bnlab::fuzz::expect_clear_error([](const std::string& path) {
        const bnlab::IdxArray array = bnlab::read_idx(path);
        std::size_t count = 1;
        for (const std::size_t dimension : array.dimensions)
            count *= dimension;
        if (array.data.size() != count) std::abort();
    });
    return 0;
}
