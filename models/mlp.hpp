#pragma once
// Ready-made multilayer perceptrons: Dense -> [BatchNorm] -> activation per hidden layer, then a
// final Dense to the class logits (the order PyTorch users write: Linear, BatchNorm1d, ReLU).

#include <string>
#include <vector>

#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "models/norm_choice.hpp"

namespace bnlab {

enum class Activation { relu, sigmoid, tanh };

// "relu", "sigmoid" or "tanh"; throws std::invalid_argument naming the bad value otherwise.
Activation parse_activation(const std::string& name);
std::string to_string(Activation activation);

// Appends `activation`'s layer to `model`.
template <typename T>
void add_activation(BasicSequential<T>& model, Activation activation);

// Appends Dense -> [normalization] -> activation [-> Dropout(dropout) when dropout > 0] for each
// hidden width, then a Dense to `classes` logits, to a model whose output so far is `inputs`
// wide (the head of an MLP or of a CNN). `norm` is BatchNorm for true, none for false, or any
// NormChoice (models/norm_choice.hpp; instance adds none to Dense layers).
template <typename T>
void add_dense_head(BasicSequential<T>& model, std::size_t inputs,
                    const std::vector<std::size_t>& hidden, std::size_t classes,
                    Activation activation, const NormChoice& norm, Rng& rng, double dropout = 0.0);

// e.g. mlp(784, {100, 100, 100}, 10, Activation::sigmoid, true, rng): 784 -> 100 -> 100 -> 100
// -> 10 with BatchNorm before every sigmoid; NormChoice(NormKind::layer) in place of true puts
// LayerNorm there. Throws std::invalid_argument for instance normalization (no positions).
template <typename T = float>
BasicSequential<T> mlp(std::size_t inputs, const std::vector<std::size_t>& hidden,
                       std::size_t classes, Activation activation, const NormChoice& norm,
                       Rng& rng);

}  // namespace bnlab
