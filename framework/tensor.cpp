#include "framework/tensor.hpp"

namespace bnlab {

std::string shape_string(std::size_t rows, std::size_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

}  // namespace bnlab
