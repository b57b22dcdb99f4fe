#include "layers/tanh.hpp"

namespace bnlab {

template class BasicActivation<float, TanhFunction>;
template class BasicActivation<double, TanhFunction>;

}  // namespace bnlab
