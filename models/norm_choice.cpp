#include "models/norm_choice.hpp"

#include <numeric>
#include <stdexcept>

#include "framework/tensor.hpp"
#include "layers/batch_norm.hpp"
#include "layers/batch_renorm.hpp"
#include "layers/group_norm.hpp"
#include "layers/instance_norm.hpp"
#include "layers/layer_norm.hpp"

namespace bnlab {

namespace {

// The paper's group count (Wu & He 2018, §3.1 and Table 3).
constexpr std::size_t kDefaultGroups = 32;

const char* kind_name(NormKind kind) {
    switch (kind) {
        case NormKind::none:
            return "none";
        case NormKind::batch:
            return "batch";
        case NormKind::renorm:
            return "renorm";
        case NormKind::group:
            return "group";
        case NormKind::layer:
            return "layer";
        case NormKind::instance:
            return "instance";
    }
    return "?";
}

}  // namespace

NormChoice::NormChoice(NormKind kind, std::size_t groups) : kind_(kind), groups_(groups) {
    if (groups != 0 && kind != NormKind::group)
        throw std::invalid_argument(std::string("normalization ") + kind_name(kind) +
                                    " takes no group count");
}

std::string NormChoice::text() const {
    std::string text = kind_name(kind_);
    if (kind_ == NormKind::group && groups_ != 0) text += ":" + std::to_string(groups_);
    return text;
}

NormChoice NormChoice::parse(const std::string& text) {
    for (NormKind kind : {NormKind::none, NormKind::batch, NormKind::renorm, NormKind::group,
                          NormKind::layer, NormKind::instance})
        if (text == kind_name(kind)) return NormChoice(kind);
    const std::string prefix = "group:";
    if (text.compare(0, prefix.size(), prefix) == 0) {
        const std::string count = text.substr(prefix.size());
        long long groups = 0;
        if (parse_number(count, groups) && groups >= 1)
            return NormChoice(NormKind::group, static_cast<std::size_t>(groups));
        throw std::invalid_argument("normalization '" + text +
                                    "': the group count must be a positive integer");
    }
    throw std::invalid_argument("unknown normalization '" + text +
                                "' (expected batch, renorm, group, group:G, layer, instance or "
                                "none)");
}

void check_norm_without_images(const NormChoice& norm, const std::string& model) {
    if (norm.kind() == NormKind::instance)
        throw std::invalid_argument(
            "instance normalization normalizes each channel of an image over its positions, and "
            "the " +
            model + " model's features have none: use batch, renorm, group, layer or none");
}

template <typename T>
void add_norm(BasicSequential<T>& model, const NormChoice& norm) {
    if (!model.output_shape())
        throw std::invalid_argument("add_norm: the model's output shape is not known yet");
    const Shape shape = *model.output_shape();
    const std::size_t channels = shape[0];
    switch (norm.kind()) {
        case NormKind::none:
            return;
        case NormKind::batch:
            model.template add<BasicBatchNorm>(channels);
            return;
        case NormKind::renorm:
            model.template add<BasicBatchRenorm>(channels);
            return;
        case NormKind::group: {
            const std::size_t groups =
                norm.groups() != 0 ? norm.groups() : std::gcd(kDefaultGroups, channels);
            // GroupNorm's own message says when the groups do not divide the channels.
            model.template add<BasicGroupNorm>(groups, channels);
            return;
        }
        case NormKind::layer:
            model.template add<BasicLayerNorm>(LayerNormOptions(shape));
            return;
        case NormKind::instance:
            if (shape.size() == 3)
                model.template add<BasicInstanceNorm2d>(InstanceNormOptions(channels).affine(true));
            return;
    }
}

template <typename T>
void fill_norm_gamma(BasicLayer<T>& layer, T value) {
    if (auto* batchnorm = dynamic_cast<BasicBatchNorm<T>*>(&layer)) {
        batchnorm->gamma().fill(value);
        return;
    }
    if (auto* sample_norm = dynamic_cast<BasicSampleNorm<T>*>(&layer)) {
        sample_norm->gamma().fill(value);
        return;
    }
    throw std::invalid_argument(layer.describe() + " is not a normalization layer with gamma");
}

template void add_norm(BasicSequential<float>&, const NormChoice&);
template void add_norm(BasicSequential<double>&, const NormChoice&);
template void fill_norm_gamma(BasicLayer<float>&, float);
template void fill_norm_gamma(BasicLayer<double>&, double);

}  // namespace bnlab
