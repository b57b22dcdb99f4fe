#include "layers/group_norm.hpp"

#include <sstream>
#include <stdexcept>

namespace bnlab {

namespace {

const GroupNormOptions& checked(const GroupNormOptions& options) {
    if (options.num_groups() == 0 || options.num_channels() == 0)
        throw std::invalid_argument(
            "GroupNorm: num_groups and num_channels must be positive, got " +
            std::to_string(options.num_groups()) + " and " +
            std::to_string(options.num_channels()));
    if (options.num_channels() % options.num_groups() != 0)
        throw std::invalid_argument(
            "GroupNorm: num_channels (" + std::to_string(options.num_channels()) +
            ") must be divisible by num_groups (" + std::to_string(options.num_groups()) + ")");
    if (!(options.eps() > 0.0))
        throw std::invalid_argument("GroupNorm: eps must be positive, got " +
                                    number_string(options.eps()));
    return options;
}

}  // namespace

template <typename T>
BasicGroupNorm<T>::BasicGroupNorm(const GroupNormOptions& options)
    : BasicSampleNorm<T>(checked(options).eps(), options.affine(), options.num_channels(),
                         Shape{options.num_channels()}),
      options_(options) {}

template <typename T>
std::string BasicGroupNorm<T>::input_shape_problem(const Shape& input) const {
    const std::string channels = std::to_string(options_.num_channels());
    if (input.empty() || input[0] != options_.num_channels())
        return "expects " + channels + " features or channels, [" + channels + "] or [" + channels +
               ", H, W]";
    return "";
}

template <typename T>
typename BasicSampleNorm<T>::Layout BasicGroupNorm<T>::layout() const {
    const std::size_t positions = shape_size(this->shape()) / options_.num_channels();
    return {options_.num_channels() / options_.num_groups() * positions, positions};
}

template <typename T>
std::string BasicGroupNorm<T>::describe() const {
    std::ostringstream text;
    text << "GroupNorm(" << options_.num_groups() << ", " << options_.num_channels()
         << ", eps=" << options_.eps();
    if (!options_.affine()) text << ", affine=false";
    text << ")";
    return text.str();
}

template class BasicGroupNorm<float>;
template class BasicGroupNorm<double>;

}  // namespace bnlab
