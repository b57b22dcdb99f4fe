#include "layers/instance_norm.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bnlab {

namespace {

const InstanceNormOptions& checked(const InstanceNormOptions& options) {
    if (options.num_features() == 0)
        throw std::invalid_argument("InstanceNorm2d: num_features must be positive");
    if (!(options.eps() > 0.0))
        throw std::invalid_argument("InstanceNorm2d: eps must be positive, got " +
                                    number_string(options.eps()));
    if (!(options.momentum() >= 0.0 && options.momentum() <= 1.0))
        throw std::invalid_argument("InstanceNorm2d: momentum must be in [0, 1], got " +
                                    number_string(options.momentum()));
    return options;
}

}  // namespace

template <typename T>
BasicInstanceNorm2d<T>::BasicInstanceNorm2d(const InstanceNormOptions& options)
    : BasicSampleNorm<T>(checked(options).eps(), options.affine(), options.num_features(),
                         Shape{options.num_features(), 1, 1}),
      options_(options),
      running_mean_(xt::zeros<T>({options.num_features()})),
      running_var_(xt::ones<T>({options.num_features()})) {}

template <typename T>
std::vector<Buffer<T>> BasicInstanceNorm2d<T>::buffers() {
    if (!options_.track_running_stats()) return {};
    return {{"running_mean", running_mean_.data(), running_mean_.size()},
            {"running_var", running_var_.data(), running_var_.size()}};
}

template <typename T>
std::string BasicInstanceNorm2d<T>::input_shape_problem(const Shape& input) const {
    const std::string channels = std::to_string(options_.num_features());
    if (input.size() < 2 || input[0] != options_.num_features())
        return "expects images of " + channels + " channels, [" + channels + ", H, W]";
    return "";
}

template <typename T>
typename BasicSampleNorm<T>::Layout BasicInstanceNorm2d<T>::layout() const {
    const std::size_t positions = shape_size(this->shape()) / options_.num_features();
    return {positions, positions};
}

template <typename T>
bool BasicInstanceNorm2d<T>::uses_kept_statistics() const {
    return options_.track_running_stats() && !this->is_training();
}

template <typename T>
void BasicInstanceNorm2d<T>::kept_statistics(std::size_t block, std::size_t, T& mean,
                                             T& inv_std) const {
    mean = running_mean_(block);
    // 1 / sqrt(running_var + eps)
    inv_std = T(1) / std::sqrt(running_var_(block) + T(options_.eps()));
}

template <typename T>
void BasicInstanceNorm2d<T>::after_block_statistics(std::size_t m, std::size_t blocks) {
    if (!options_.track_running_stats() || m == 0) return;
    const double positions = double(shape_size(this->shape()) / options_.num_features());
    const double momentum = options_.momentum();
    for (std::size_t c = 0; c < blocks; ++c) {
        // The batch's average of the instances' means and unbiased variances.
        double mean = 0.0, var = 0.0;
        for (std::size_t i = 0; i < m; ++i) {
            mean += double(this->block_means()[i * blocks + c]);
            var += double(this->block_variances()[i * blocks + c]) * positions / (positions - 1);
        }
        mean /= double(m);
        var /= double(m);
        // running = (1 - momentum) running + momentum batch
        running_mean_(c) = T((1.0 - momentum) * double(running_mean_(c)) + momentum * mean);
        running_var_(c) = T((1.0 - momentum) * double(running_var_(c)) + momentum * var);
    }
}

template <typename T>
void BasicInstanceNorm2d<T>::check_block_size(std::size_t m, std::size_t block_size) const {
    if (block_size < 2) {
        Shape batch_shape = this->shape();
        batch_shape.insert(batch_shape.begin(), m);
        throw std::invalid_argument(
            describe() +
            ": expected more than 1 position per channel to normalize over, "
            "got input of shape " +
            shape_string(batch_shape));
    }
}

template <typename T>
std::string BasicInstanceNorm2d<T>::describe() const {
    std::ostringstream text;
    text << "InstanceNorm2d(" << options_.num_features() << ", eps=" << options_.eps();
    if (options_.track_running_stats()) text << ", momentum=" << options_.momentum();
    if (options_.affine()) text << ", affine=true";
    if (options_.track_running_stats()) text << ", track_running_stats=true";
    text << ")";
    return text.str();
}

template class BasicInstanceNorm2d<float>;
template class BasicInstanceNorm2d<double>;

}  // namespace bnlab
