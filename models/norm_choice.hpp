#pragma once
// Which normalization the ready-made models (mlp, cnn, resnet) put after each convolution and
// hidden Dense layer, as `train --norm` names it:
//   batch     BatchNorm (the default; `--bn on`)       renorm    BatchRenorm, the paper's schedule
//   group[:G] GroupNorm, G groups (32 by default)     layer     LayerNorm over the whole sample
//   instance  InstanceNorm2d with gamma and beta       none      nothing (`--bn off`)
// GroupNorm's groups are G where G divides the layer's channels; without a G given, the
// paper's 32 become gcd(32, C) for a layer of C channels (16 for 16). LayerNorm normalizes all
// of a sample's values ([C, H, W] after a convolution), with an element-wise gamma and beta, as
// nn.LayerNorm([C, H, W]). InstanceNorm normalizes each channel over its positions, so it only
// follows convolutions: a CNN's hidden Dense layers get none, and an MLP cannot have it.

#include <cstddef>
#include <string>

#include "framework/sequential.hpp"

namespace bnlab {

enum class NormKind { none, batch, renorm, group, layer, instance };

class NormChoice {
  public:
    // BatchNorm.
    NormChoice() = default;
    // BatchNorm when true, none when false: the bool the model functions took before.
    NormChoice(bool batchnorm) : kind_(batchnorm ? NormKind::batch : NormKind::none) {}  // NOLINT
    // `groups` only for NormKind::group (0: the default, see above).
    explicit NormChoice(NormKind kind, std::size_t groups = 0);

    NormKind kind() const { return kind_; }
    std::size_t groups() const { return groups_; }
    bool any() const { return kind_ != NormKind::none; }

    // "batch", "group:8", "none", … as parse() reads it.
    std::string text() const;
    // "batch", "renorm", "group", "group:G", "layer", "instance" or "none"; throws
    // std::invalid_argument naming the text and the choices otherwise.
    static NormChoice parse(const std::string& text);

    bool operator==(const NormChoice& other) const {
        return kind_ == other.kind_ && groups_ == other.groups_;
    }
    bool operator!=(const NormChoice& other) const { return !(*this == other); }

  private:
    NormKind kind_ = NormKind::batch;
    std::size_t groups_ = 0;
};

// Appends the normalization `norm` chooses for `model`'s output so far (features or an image),
// or nothing for none and for instance after features. Throws std::invalid_argument naming the
// layer's shape when G does not divide its channels.
template <typename T>
void add_norm(BasicSequential<T>& model, const NormChoice& norm);

// Throws std::invalid_argument when `norm` is instance normalization, which a model of plain
// features (`model`, e.g. "mlp") cannot have.
void check_norm_without_images(const NormChoice& norm, const std::string& model);

// gamma of a normalization layer made by add_norm, filled with `value` (ResNet's
// zero_init_residual); throws std::invalid_argument when `layer` is none.
template <typename T>
void fill_norm_gamma(BasicLayer<T>& layer, T value);

}  // namespace bnlab
