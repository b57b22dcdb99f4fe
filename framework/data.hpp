#pragma once
// In-memory data (classification or regression) and a mini-batch loader that fills
// preallocated buffers.

#include <cstdint>
#include <vector>

#include "framework/layer.hpp"
#include "framework/loss.hpp"
#include "framework/random.hpp"
#include "framework/tensor.hpp"

namespace bnlab {

template <typename T>
struct BasicDataset {
    Matrix<T> inputs;  // [samples, features]
    Labels labels;     // [samples]; empty for regression data
    // The shape of one sample when its features are more than a list: {1, rows, cols} for IDX
    // images. Empty for plain features.
    Shape sample_shape = {};
    // Regression data: the target values, [samples, outputs]; empty for classification.
    Matrix<T> values = Matrix<T>(typename Matrix<T>::shape_type{0, 0});
    bool regression() const { return values.size() > 0; }
    std::size_t size() const { return regression() ? values.shape(0) : labels.size(); }
};
using Dataset = BasicDataset<float>;

// Gaussian blobs: `classes` centres drawn from N(0, separation^2) per feature, samples from
// N(centre, 1). A small problem whose loss visibly falls in a few epochs.
Dataset make_blobs(std::size_t samples, std::size_t features, std::size_t classes,
                   double separation, Rng& rng);

// Rows [begin, end) of `data`, e.g. to split one set into training and test parts.
template <typename T>
BasicDataset<T> slice(const BasicDataset<T>& data, std::size_t begin, std::size_t end);

// The rows `indices` of `data`, in that order.
template <typename T>
BasicDataset<T> rows_of(const BasicDataset<T>& data, const std::vector<std::size_t>& indices);

// A training set and the validation set held out of it.
template <typename T>
struct ValidationSplit {
    BasicDataset<T> train;
    BasicDataset<T> validation;
};

// Holds out round(fraction * samples) rows of `data`, drawn with a generator seeded by `seed`;
// both parts keep the rows' order. Throws std::invalid_argument for a fraction outside (0, 1)
// or one that leaves either part empty.
template <typename T>
ValidationSplit<T> split_validation(const BasicDataset<T>& data, double fraction,
                                    std::uint64_t seed);

// The shift and scale that standardization applied: x' = (x - mean) / std.
struct Standardization {
    double mean = 0.0;
    double std = 1.0;
};

// Standardizes the inputs of `train` and of `test` in place with one mean and standard deviation
// over every input value of `train` (the test set must not inform its own preprocessing), as
// torchvision's Normalize does with the data set's published statistics. Throws when `train`
// is empty or constant.
template <typename T>
Standardization standardize(BasicDataset<T>& train, BasicDataset<T>& test);

// Each column's mean and biased standard deviation, accumulated in double.
template <typename T>
std::vector<Standardization> column_statistics(const Matrix<T>& data);

// Standardizes each column of `train` to mean 0 and standard deviation 1 (biased), and `test`'s
// with the same shift and scale (scikit-learn's StandardScaler): for features of different
// units, or a regression's target values. Returns each column's. A constant column is only
// shifted. Throws when `train` has no rows or the two have different columns.
template <typename T>
std::vector<Standardization> standardize_columns(Matrix<T>& train, Matrix<T>& test);

template <typename T>
class BasicBatchLoader {
  public:
    // Reads batches of `batch_size` rows of `data` (which must outlive the loader). With a
    // `shuffle_rng` each epoch visits the rows in a fresh order drawn from it; without, in order.
    // `drop_last` leaves out the final partial batch.
    BasicBatchLoader(const BasicDataset<T>& data, std::size_t batch_size, Rng* shuffle_rng,
                     bool drop_last);

    // Starts a pass over the data (reshuffling when shuffling).
    void start_epoch();
    // Fills inputs() and labels() with the next batch; false when the pass is over.
    bool next();
    // Data-parallel training: every batch of batch_size rows is a global batch, of which
    // inputs() and labels() get only this process's rows `share` (see data_parallel.hpp). Needs
    // drop_last, so that every global batch is whole; throws std::invalid_argument otherwise or
    // when `share` is not part of a batch.
    void take_share(const BatchShare& share);

    // The order of the current pass (for checkpoints): each epoch shuffles the previous order,
    // so resuming needs it. restore_order() takes such an order back and starts from its
    // beginning; it throws unless `order` is a permutation of the rows.
    const std::vector<std::size_t>& order() const { return order_; }
    void restore_order(const std::vector<std::size_t>& order);

    const Matrix<T>& inputs() const { return batch_inputs_; }
    const Labels& labels() const { return batch_labels_; }
    const Matrix<T>& values() const { return batch_values_; }
    // The batch's labels, or its values for regression data, as a loss takes them.
    BasicTargets<T> targets() const {
        return data_.regression() ? BasicTargets<T>{nullptr, &batch_values_}
                                  : BasicTargets<T>{&batch_labels_, nullptr};
    }
    // The batch's rows (this process's share of them in data-parallel training).
    std::size_t rows() const { return batch_inputs_.shape(0); }
    std::size_t batches_per_epoch() const;

  private:
    const BasicDataset<T>& data_;
    std::size_t batch_size_;
    Rng* shuffle_rng_;
    bool drop_last_;
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    BatchShare share_;        // global_rows 0: the whole batch
    Matrix<T> batch_inputs_;  // [batch, features]
    Labels batch_labels_;     // [batch]
    Matrix<T> batch_values_;  // [batch, outputs] for regression data
};

using BatchLoader = BasicBatchLoader<float>;
extern template class BasicBatchLoader<float>;
extern template class BasicBatchLoader<double>;

}  // namespace bnlab
