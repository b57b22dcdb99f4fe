#include "framework/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace bnlab {

BatchShare batch_share(std::size_t global_rows, int rank, int size) {
    if (size <= 0 || rank < 0 || rank >= size)
        throw std::invalid_argument("batch_share: rank " + std::to_string(rank) +
                                    " is not one of " + std::to_string(size) + " processes");
    const std::size_t processes = std::size_t(size), r = std::size_t(rank);
    const std::size_t base = global_rows / processes, extra = global_rows % processes;
    const std::size_t begin = r * base + std::min(r, extra);
    return {begin, begin + base + (r < extra ? 1 : 0), global_rows};
}

std::string first_error(Communicator& communicator, const std::string& error) {
    // Each process's message length + 1, or 0 without an error.
    const double mine = error.empty() ? 0.0 : double(error.size() + 1);
    std::vector<double> lengths(std::size_t(communicator.size()));
    communicator.allgather(&mine, 1, lengths.data());
    const auto failed =
        std::find_if(lengths.begin(), lengths.end(), [](double v) { return v > 0; });
    if (failed == lengths.end()) return "";
    const int root = int(failed - lengths.begin());
    std::string message = communicator.rank() == root ? error : std::string();
    message.resize(std::size_t(*failed) - 1);
    communicator.broadcast(message.data(), message.size(), root);
    const bool everyone =
        std::all_of(lengths.begin(), lengths.end(), [](double v) { return v > 0; });
    return everyone ? message : "rank " + std::to_string(root) + ": " + message;
}

void throw_first_error(Communicator& communicator, const std::string& error) {
    const std::string agreed = first_error(communicator, error);
    if (!agreed.empty()) throw CollectiveError(agreed);
}

template <typename T>
BasicDataParallel<T>::BasicDataParallel(Communicator& communicator, BasicLayer<T>& model,
                                        std::size_t global_batch)
    : communicator_(communicator), parameters_(model.parameters()), buffers_(model.buffers()) {
    if (global_batch < std::size_t(communicator.size()))
        throw std::invalid_argument("a global batch of " + std::to_string(global_batch) +
                                    " rows cannot give each of the " +
                                    std::to_string(communicator.size()) +
                                    " processes a row: make the batch at least that large");
    share_ = batch_share(global_batch, communicator.rank(), communicator.size());
    model.set_batch_share(share_);
    std::size_t values = 2;
    for (const Parameter<T>& parameter : parameters_)
        values += parameter.size;
    flat_.assign(values, T(0));
}

template <typename T>
void BasicDataParallel<T>::broadcast_state() {
    for (const Parameter<T>& parameter : parameters_)
        communicator_.broadcast(parameter.value, parameter.size, 0);
    broadcast_buffers();
}

template <typename T>
void BasicDataParallel<T>::broadcast_buffers() {
    for (const Buffer<T>& buffer : buffers_)
        communicator_.broadcast(buffer.value, buffer.size, 0);
}

template <typename T>
StepResult BasicDataParallel<T>::reduce_gradients(const StepResult& local) {
    T* flat = flat_.data();
    for (const Parameter<T>& parameter : parameters_)
        flat = std::copy_n(parameter.grad, parameter.size, flat);
    // The loss's sum over the share's rows, so that the sum over processes is the global one.
    flat[0] = T(local.loss * double(share_.rows()));
    flat[1] = T(local.correct);
    const auto start = std::chrono::steady_clock::now();
    communicator_.allreduce_sum(flat_.data(), flat_.size());
    allreduce_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const T* summed = flat_.data();
    for (const Parameter<T>& parameter : parameters_) {
        std::copy_n(summed, parameter.size, parameter.grad);
        summed += parameter.size;
    }
    return {double(summed[0]) / double(share_.global_rows), std::size_t(summed[1])};
}

template <typename T>
Evaluation BasicDataParallel<T>::reduce_evaluation(const Evaluation& local,
                                                   std::size_t local_samples) {
    double sums[3] = {local.loss * double(local_samples), local.accuracy * double(local_samples),
                      double(local_samples)};
    communicator_.allreduce_sum(sums, 3);
    return {sums[0] / sums[2], sums[1] / sums[2]};
}

template class BasicDataParallel<float>;
template class BasicDataParallel<double>;

}  // namespace bnlab
