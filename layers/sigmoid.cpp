#include "layers/sigmoid.hpp"

namespace bnlab {

template class BasicActivation<float, SigmoidFunction>;
template class BasicActivation<double, SigmoidFunction>;

}  // namespace bnlab
