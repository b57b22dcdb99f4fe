#include "framework/tensor.hpp"

#include <sstream>

namespace bnlab {

std::string number_string(double value) {
    std::ostringstream text;
    text << value;
    return text.str();
}

std::string shape_string(std::size_t rows, std::size_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

}  // namespace bnlab
