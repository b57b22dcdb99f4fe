#include "framework/data.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace bnlab {

Dataset make_blobs(std::size_t samples, std::size_t features, std::size_t classes,
                   double separation, Rng& rng) {
    if (samples == 0 || features == 0 || classes < 2)
        throw std::invalid_argument("make_blobs: need samples > 0, features > 0, classes >= 2");
    Matrix<float> centres = xt::empty<float>({classes, features});
    for (float& value : centres)
        value = static_cast<float>(separation * rng.normal());
    Dataset data{xt::empty<float>({samples, features}), xt::empty<int>({samples})};
    for (std::size_t i = 0; i < samples; ++i) {
        const std::size_t label = rng.below(classes);
        data.labels(i) = static_cast<int>(label);
        for (std::size_t k = 0; k < features; ++k)
            data.inputs(i, k) = centres(label, k) + static_cast<float>(rng.normal());
    }
    return data;
}

template <typename T>
BasicDataset<T> slice(const BasicDataset<T>& data, std::size_t begin, std::size_t end) {
    if (begin > end || end > data.size())
        throw std::invalid_argument("slice: rows [" + std::to_string(begin) + ", " +
                                    std::to_string(end) + ") outside a dataset of " +
                                    std::to_string(data.size()) + " samples");
    const std::size_t features = data.inputs.shape(1);
    const bool regression = data.regression();
    BasicDataset<T> part{xt::empty<T>({end - begin, features}),
                         xt::empty<int>({regression ? 0 : end - begin})};
    std::copy(data.inputs.begin() + begin * features, data.inputs.begin() + end * features,
              part.inputs.begin());
    if (regression) {
        const std::size_t outputs = data.values.shape(1);
        part.values = xt::empty<T>({end - begin, outputs});
        std::copy(data.values.begin() + begin * outputs, data.values.begin() + end * outputs,
                  part.values.begin());
    } else {
        std::copy(data.labels.begin() + begin, data.labels.begin() + end, part.labels.begin());
    }
    part.sample_shape = data.sample_shape;
    return part;
}

template <typename T>
BasicDataset<T> rows_of(const BasicDataset<T>& data, const std::vector<std::size_t>& indices) {
    const std::size_t features = data.inputs.shape(1);
    const bool regression = data.regression();
    const std::size_t outputs = regression ? data.values.shape(1) : 0;
    BasicDataset<T> part{xt::empty<T>({indices.size(), features}),
                         xt::empty<int>({regression ? 0 : indices.size()})};
    if (regression) part.values = xt::empty<T>({indices.size(), outputs});
    for (std::size_t i = 0; i < indices.size(); ++i) {
        if (indices[i] >= data.size())
            throw std::invalid_argument("rows_of: row " + std::to_string(indices[i]) +
                                        " outside a dataset of " + std::to_string(data.size()) +
                                        " samples");
        std::copy_n(data.inputs.begin() + indices[i] * features, features,
                    part.inputs.begin() + i * features);
        if (regression)
            std::copy_n(data.values.begin() + indices[i] * outputs, outputs,
                        part.values.begin() + i * outputs);
        else
            part.labels(i) = data.labels(indices[i]);
    }
    part.sample_shape = data.sample_shape;
    return part;
}

template <typename T>
std::vector<Standardization> standardize_columns(Matrix<T>& train, Matrix<T>& test) {
    if (train.shape(0) == 0) throw std::invalid_argument("standardize_columns: no training rows");
    if (train.shape(1) != test.shape(1))
        throw std::invalid_argument("standardize_columns: " + std::to_string(train.shape(1)) +
                                    " training columns but " + std::to_string(test.shape(1)) +
                                    " test columns");
    std::vector<Standardization> applied = column_statistics(train);
    for (std::size_t j = 0; j < train.shape(1); ++j) {
        Standardization& column = applied[j];
        if (column.std == 0.0) column.std = 1.0;  // a constant column is only shifted
        for (Matrix<T>* matrix : {&train, &test})
            for (std::size_t i = 0; i < matrix->shape(0); ++i)
                (*matrix)(i, j) = T((double((*matrix)(i, j)) - column.mean) / column.std);
    }
    return applied;
}

template <typename T>
std::vector<Standardization> column_statistics(const Matrix<T>& data) {
    std::vector<Standardization> statistics;
    const std::size_t rows = data.shape(0);
    for (std::size_t j = 0; j < data.shape(1); ++j) {
        // The variance around the mean, not E[x²] - E[x]²: no cancellation of large sums.
        double sum = 0.0, squares = 0.0;
        for (std::size_t i = 0; i < rows; ++i)
            sum += double(data(i, j));
        const double mean = sum / double(rows);
        for (std::size_t i = 0; i < rows; ++i)
            squares += (double(data(i, j)) - mean) * (double(data(i, j)) - mean);
        statistics.push_back({mean, std::sqrt(squares / double(rows))});
    }
    return statistics;
}

template <typename T>
ValidationSplit<T> split_validation(const BasicDataset<T>& data, double fraction,
                                    std::uint64_t seed) {
    if (!(fraction > 0.0 && fraction < 1.0))
        throw std::invalid_argument("the validation fraction must be in (0, 1), got " +
                                    number_string(fraction));
    const std::size_t held_out = std::size_t(std::llround(fraction * double(data.size())));
    if (held_out == 0 || held_out == data.size())
        throw std::invalid_argument("a validation fraction of " + number_string(fraction) + " of " +
                                    std::to_string(data.size()) + " samples leaves " +
                                    (held_out == 0 ? "the validation set" : "the training set") +
                                    " empty");
    std::vector<std::size_t> order(data.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    Rng rng(seed);
    rng.shuffle(order);
    std::vector<std::size_t> validation(order.begin(), order.begin() + std::ptrdiff_t(held_out));
    std::vector<std::size_t> train(order.begin() + std::ptrdiff_t(held_out), order.end());
    std::sort(validation.begin(), validation.end());
    std::sort(train.begin(), train.end());
    return {rows_of(data, train), rows_of(data, validation)};
}

template <typename T>
Standardization standardize(BasicDataset<T>& train, BasicDataset<T>& test) {
    const double count = static_cast<double>(train.inputs.size());
    if (count == 0) throw std::invalid_argument("standardize: the training set is empty");
    // Accumulated in double: a float sum over 47 million pixels would lose digits.
    double sum = 0.0;
    for (T value : train.inputs)
        sum += double(value);
    const double mean = sum / count;
    double squares = 0.0;
    for (T value : train.inputs)
        squares += (double(value) - mean) * (double(value) - mean);
    const double std = std::sqrt(squares / count);
    if (!(std > 0.0)) throw std::invalid_argument("standardize: the training inputs are constant");
    for (Matrix<T>* inputs : {&train.inputs, &test.inputs})
        for (T& value : *inputs)
            value = static_cast<T>((double(value) - mean) / std);
    return {mean, std};
}

template <typename T>
BasicBatchLoader<T>::BasicBatchLoader(const BasicDataset<T>& data, std::size_t batch_size,
                                      Rng* shuffle_rng, bool drop_last)
    : data_(data),
      batch_size_(batch_size),
      shuffle_rng_(shuffle_rng),
      drop_last_(drop_last),
      order_(data.size()) {
    if (batch_size == 0) throw std::invalid_argument("BatchLoader: batch size must be positive");
    if (data.inputs.shape(0) != data.size())
        throw std::invalid_argument("BatchLoader: " + std::to_string(data.inputs.shape(0)) +
                                    " input rows but " + std::to_string(data.size()) +
                                    (data.regression() ? " target rows" : " labels"));
    if (drop_last && data.size() < batch_size)
        throw std::invalid_argument("BatchLoader: batch size " + std::to_string(batch_size) +
                                    " exceeds the " + std::to_string(data.size()) +
                                    " samples, and partial batches are dropped");
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    start_epoch();
}

template <typename T>
void BasicBatchLoader<T>::start_epoch() {
    position_ = 0;
    if (shuffle_rng_) shuffle_rng_->shuffle(order_);
}

template <typename T>
void BasicBatchLoader<T>::restore_order(const std::vector<std::size_t>& order) {
    std::vector<bool> seen(order_.size(), false);
    bool permutation = order.size() == order_.size();
    for (std::size_t i = 0; permutation && i < order.size(); ++i) {
        permutation = order[i] < seen.size() && !seen[order[i]];
        if (permutation) seen[order[i]] = true;
    }
    if (!permutation)
        throw std::invalid_argument(
            "BatchLoader: the order to restore is not a permutation of "
            "the " +
            std::to_string(order_.size()) + " rows");
    order_ = order;
    position_ = 0;
}

template <typename T>
bool BasicBatchLoader<T>::next() {
    const std::size_t remaining = order_.size() - position_;
    if (remaining == 0 || (drop_last_ && remaining < batch_size_)) return false;
    const std::size_t batch_rows = std::min(batch_size_, remaining);
    const std::size_t first = share_.global_rows > 0 ? share_.begin : 0;
    const std::size_t rows = share_.global_rows > 0 ? share_.rows() : batch_rows;
    const std::size_t features = data_.inputs.shape(1);
    ensure_shape(batch_inputs_, rows, features);
    const bool regression = data_.regression();
    const std::size_t outputs = regression ? data_.values.shape(1) : 0;
    if (regression)
        ensure_shape(batch_values_, rows, outputs);
    else if (batch_labels_.size() != rows)
        batch_labels_.resize({rows});
    for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t source = order_[position_ + first + r];
        std::copy_n(&data_.inputs(source, 0), features, &batch_inputs_(r, 0));
        if (regression)
            std::copy_n(&data_.values(source, 0), outputs, &batch_values_(r, 0));
        else
            batch_labels_(r) = data_.labels(source);
    }
    position_ += batch_rows;
    return true;
}

template <typename T>
void BasicBatchLoader<T>::take_share(const BatchShare& share) {
    if (!drop_last_)
        throw std::invalid_argument(
            "BatchLoader: a share of each batch needs whole batches (drop_last)");
    if (share.global_rows != batch_size_ || share.begin >= share.end || share.end > batch_size_)
        throw std::invalid_argument(
            "BatchLoader: rows [" + std::to_string(share.begin) + ", " + std::to_string(share.end) +
            ") of " + std::to_string(share.global_rows) + " are not a share of batches of " +
            std::to_string(batch_size_));
    share_ = share;
}

template <typename T>
std::size_t BasicBatchLoader<T>::batches_per_epoch() const {
    return drop_last_ ? order_.size() / batch_size_
                      : (order_.size() + batch_size_ - 1) / batch_size_;
}

template BasicDataset<float> slice(const BasicDataset<float>&, std::size_t, std::size_t);
template BasicDataset<double> slice(const BasicDataset<double>&, std::size_t, std::size_t);
template BasicDataset<float> rows_of(const BasicDataset<float>&, const std::vector<std::size_t>&);
template BasicDataset<double> rows_of(const BasicDataset<double>&, const std::vector<std::size_t>&);
template ValidationSplit<float> split_validation(const BasicDataset<float>&, double, std::uint64_t);
template ValidationSplit<double> split_validation(const BasicDataset<double>&, double,
                                                  std::uint64_t);
template std::vector<Standardization> column_statistics(const Matrix<float>&);
template std::vector<Standardization> column_statistics(const Matrix<double>&);
template std::vector<Standardization> standardize_columns(Matrix<float>&, Matrix<float>&);
template std::vector<Standardization> standardize_columns(Matrix<double>&, Matrix<double>&);
template Standardization standardize(BasicDataset<float>&, BasicDataset<float>&);
template Standardization standardize(BasicDataset<double>&, BasicDataset<double>&);
template class BasicBatchLoader<float>;
template class BasicBatchLoader<double>;

}  // namespace bnlab
