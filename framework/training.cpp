#include "framework/training.hpp"

#include "framework/data_parallel.hpp"

namespace bnlab {

template <typename T>
Evaluation evaluate(BasicLayer<T>& model, const BasicDataset<T>& data, std::size_t batch_size) {
    ModeGuard<T> eval_mode(model, false);
    BasicBatchLoader<T> loader(data, batch_size, nullptr, false);
    BasicSoftmaxCrossEntropy<T> loss;
    double loss_sum = 0.0;
    std::size_t correct = 0;
    while (loader.next()) {
        const Matrix<T>& logits = model.forward(loader.inputs());
        loss_sum += double(loss.forward(logits, loader.labels())) * double(logits.shape(0));
        correct += count_correct(logits, loader.labels());
    }
    const double samples = static_cast<double>(data.size());
    return {loss_sum / samples, static_cast<double>(correct) / samples};
}

template <typename T>
StepResult compute_gradients(BasicLayer<T>& model, BasicSoftmaxCrossEntropy<T>& loss,
                             BasicOptimizer<T>& optimizer, const Matrix<T>& inputs,
                             const Labels& labels, BasicDataParallel<T>* parallel) {
    // Nothing here uses dL/dinputs: skipping it saves the first layer's largest product.
    if (model.input_grad_needed()) model.set_input_grad_needed(false);
    optimizer.zero_grad();
    const Matrix<T>& logits = model.forward(inputs);
    StepResult result{double(loss.forward(logits, labels)), count_correct(logits, labels)};
    // A share's loss is a part of the global batch's mean: divided by the global rows.
    model.backward(loss.backward(parallel ? parallel->share().global_rows : 0));
    if (parallel) result = parallel->reduce_gradients(result);
    return result;
}

template <typename T>
StepResult train_step(BasicLayer<T>& model, BasicSoftmaxCrossEntropy<T>& loss,
                      BasicOptimizer<T>& optimizer, const Matrix<T>& inputs, const Labels& labels,
                      BasicDataParallel<T>* parallel) {
    const StepResult result = compute_gradients(model, loss, optimizer, inputs, labels, parallel);
    optimizer.step();
    return result;
}

template Evaluation evaluate(BasicLayer<float>&, const BasicDataset<float>&, std::size_t);
template Evaluation evaluate(BasicLayer<double>&, const BasicDataset<double>&, std::size_t);
template StepResult compute_gradients(BasicLayer<float>&, BasicSoftmaxCrossEntropy<float>&,
                                      BasicOptimizer<float>&, const Matrix<float>&, const Labels&,
                                      BasicDataParallel<float>*);
template StepResult compute_gradients(BasicLayer<double>&, BasicSoftmaxCrossEntropy<double>&,
                                      BasicOptimizer<double>&, const Matrix<double>&, const Labels&,
                                      BasicDataParallel<double>*);
template StepResult train_step(BasicLayer<float>&, BasicSoftmaxCrossEntropy<float>&,
                               BasicOptimizer<float>&, const Matrix<float>&, const Labels&,
                               BasicDataParallel<float>*);
template StepResult train_step(BasicLayer<double>&, BasicSoftmaxCrossEntropy<double>&,
                               BasicOptimizer<double>&, const Matrix<double>&, const Labels&,
                               BasicDataParallel<double>*);

}  // namespace bnlab
