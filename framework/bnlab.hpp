#pragma once
// Everything a user composing models needs, in one include.

#include "framework/data.hpp"
#include "framework/idx.hpp"
#include "framework/layer.hpp"
#include "framework/loss.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "framework/tensor.hpp"
#include "framework/training.hpp"
#include "layers/batch_norm.hpp"
#include "layers/dense.hpp"
#include "layers/relu.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"
#include "models/fold_batchnorm.hpp"
#include "models/mlp.hpp"
