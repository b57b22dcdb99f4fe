#include "framework/training.hpp"

#include "framework/data_parallel.hpp"

namespace bnlab {

template <typename T>
Evaluation evaluate(BasicLayer<T>& model, const BasicDataset<T>& data, std::size_t batch_size,
                    BasicLoss<T>& loss) {
    ModeGuard<T> eval_mode(model, false);
    BasicBatchLoader<T> loader(data, batch_size, nullptr, false);
    double loss_sum = 0.0;
    std::size_t correct = 0;
    while (loader.next()) {
        const Matrix<T>& outputs = model.forward(loader.inputs());
        loss_sum += double(loss.forward(outputs, loader.targets())) * double(outputs.shape(0));
        if (!loss.regression()) correct += count_correct(outputs, loader.labels());
    }
    const double samples = static_cast<double>(data.size());
    return {loss_sum / samples, static_cast<double>(correct) / samples};
}

template <typename T>
Evaluation evaluate(BasicLayer<T>& model, const BasicDataset<T>& data, std::size_t batch_size) {
    BasicSoftmaxCrossEntropy<T> loss;
    return evaluate(model, data, batch_size, loss);
}

template <typename T>
StepResult compute_gradients(BasicLayer<T>& model, BasicLoss<T>& loss, BasicOptimizer<T>& optimizer,
                             const Matrix<T>& inputs, const BasicTargets<T>& targets,
                             BasicDataParallel<T>* parallel) {
    // Nothing here uses dL/dinputs: skipping it saves the first layer's largest product.
    if (model.input_grad_needed()) model.set_input_grad_needed(false);
    optimizer.zero_grad();
    const Matrix<T>& outputs = model.forward(inputs);
    StepResult result{double(loss.forward(outputs, targets)),
                      targets.labels ? count_correct(outputs, *targets.labels) : 0};
    // A share's loss is a part of the global batch's mean: divided by the global rows.
    model.backward(loss.backward(parallel ? parallel->share().global_rows : 0));
    if (parallel) result = parallel->reduce_gradients(result);
    return result;
}

template <typename T>
StepResult train_step(BasicLayer<T>& model, BasicLoss<T>& loss, BasicOptimizer<T>& optimizer,
                      const Matrix<T>& inputs, const BasicTargets<T>& targets,
                      BasicDataParallel<T>* parallel) {
    const StepResult result = compute_gradients(model, loss, optimizer, inputs, targets, parallel);
    optimizer.step();
    return result;
}

#define BNLAB_TRAINING_INSTANCES(T)                                                          \
    template Evaluation evaluate(BasicLayer<T>&, const BasicDataset<T>&, std::size_t);       \
    template Evaluation evaluate(BasicLayer<T>&, const BasicDataset<T>&, std::size_t,        \
                                 BasicLoss<T>&);                                             \
    template StepResult compute_gradients(BasicLayer<T>&, BasicLoss<T>&, BasicOptimizer<T>&, \
                                          const Matrix<T>&, const BasicTargets<T>&,          \
                                          BasicDataParallel<T>*);                            \
    template StepResult train_step(BasicLayer<T>&, BasicLoss<T>&, BasicOptimizer<T>&,        \
                                   const Matrix<T>&, const BasicTargets<T>&,                 \
                                   BasicDataParallel<T>*);
BNLAB_TRAINING_INSTANCES(float)
BNLAB_TRAINING_INSTANCES(double)
#undef BNLAB_TRAINING_INSTANCES

}  // namespace bnlab
