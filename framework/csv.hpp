#pragma once
// Data from CSV files: one row per sample, numeric features and one integer label column (or,
// for a regression, one or more target value columns), named in a header line or given by index.
// xtensor's CSV reader (xt::load_csv) splits each line into fields; every field is then checked
// here, so that bad data is one error "path:line: problem" and no half-read data set.
//   Dataset train = read_csv_dataset("train.csv");                 // label column "label"
//   Dataset test = read_csv_dataset("test.csv", CsvOptions().label("3").header(false));
//   Dataset houses = read_csv_dataset("houses.csv", CsvOptions().targets({"price"}));

#include <string>
#include <vector>

#include "framework/data.hpp"
#include "framework/idx.hpp"

namespace bnlab {

class CsvOptions {
  public:
    // The label column: its name in the header line, or its index from 0 ("0", "4").
    CsvOptions& label(std::string value) { return label_ = std::move(value), *this; }
    // Regression data: these columns (names or indices) are the target values, in this order,
    // and there is no label column (Dataset::values).
    CsvOptions& targets(std::vector<std::string> value) {
        return targets_ = std::move(value), *this;
    }
    const std::vector<std::string>& targets() const { return targets_; }
    // Whether the first line names the columns (else every line is data).
    CsvOptions& header(bool value) { return header_ = value, *this; }
    CsvOptions& delimiter(char value) { return delimiter_ = value, *this; }
    const std::string& label() const { return label_; }
    bool header() const { return header_; }
    char delimiter() const { return delimiter_; }

  private:
    std::string label_ = "label";
    std::vector<std::string> targets_;
    bool header_ = true;
    char delimiter_ = ',';
};

// Labels are integers from 0 to kMaxCsvLabel: a classifier gets one output per class.
inline constexpr int kMaxCsvLabel = 65535;

// The rows of `path` as features (every column but the label, in file order, as float32) and
// labels. Blank lines and lines starting with '#' are skipped. Throws std::runtime_error
// "path:line: problem" for a missing file, a field that is not a finite number, a row with
// another number of fields than the first, a label that is not an integer from 0 to
// kMaxCsvLabel, an unknown label column, or a file without rows.
Dataset read_csv_dataset(const std::string& path, const CsvOptions& options = {});

// A data folder: the four IDX files of Fashion-MNIST or MNIST (load_fashion_mnist), or
// train.csv and test.csv (read_csv_dataset; they must have the same number of features).
// Throws naming the folder when it holds neither.
FashionMnist load_data_folder(const std::string& directory, const CsvOptions& csv = {});

// Whether `directory` holds train.csv (so load_data_folder reads CSV).
bool is_csv_folder(const std::string& directory);

}  // namespace bnlab
