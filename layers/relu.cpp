#include "layers/relu.hpp"

namespace bnlab {

template class BasicActivation<float, ReLUFunction>;
template class BasicActivation<double, ReLUFunction>;

}  // namespace bnlab
