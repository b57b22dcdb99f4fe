#include "framework/csv.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <xtensor/xcsv.hpp>

namespace bnlab {

namespace {

[[noreturn]] void fail(const std::string& path, std::size_t line, const std::string& problem) {
    throw std::runtime_error(path + ":" + std::to_string(line) + ": " + problem);
}

// One line's fields, split by xtensor's CSV reader, without the spaces around them (xtensor 0.24
// trims only some: its substr takes the last position for a length).
std::vector<std::string> fields_of(const std::string& line, char delimiter) {
    std::istringstream stream(line);
    const auto cells = xt::load_csv<std::string>(stream, delimiter, 0, -1, "\n");
    std::vector<std::string> fields;
    for (const std::string& cell : cells) {
        const std::size_t first = cell.find_first_not_of(" \t");
        fields.push_back(first == std::string::npos
                             ? std::string()
                             : cell.substr(first, cell.find_last_not_of(" \t") - first + 1));
    }
    // getline drops a final empty field ("1,2,"): count it, so that the row is ragged.
    if (!line.empty() && line.back() == delimiter) fields.emplace_back();
    return fields;
}

bool is_blank_or_comment(const std::string& line) {
    const std::size_t first = line.find_first_not_of(" \t");
    return first == std::string::npos || line[first] == '#';
}

}  // namespace

Dataset read_csv_dataset(const std::string& path, const CsvOptions& options) {
    std::ifstream file(path);
    if (!file) throw std::runtime_error(path + ": cannot open the CSV file");
    const bool regression = !options.targets().empty();
    std::vector<std::string> names;  // from the header, or "column N"
    std::size_t width = 0, first_row_line = 0, rows = 0;
    // Per column: -1 a feature, -2 the label, else the index of the target value it holds.
    std::vector<long> role;
    std::vector<float> features, values;
    std::vector<int> labels;
    std::string line;
    for (std::size_t number = 1; std::getline(file, line); ++number) {
        if (!line.empty() && line.back() == '\r') line.pop_back();  // Windows line ends
        if (is_blank_or_comment(line)) continue;
        const std::vector<std::string> fields = fields_of(line, options.delimiter());
        if (width == 0) {
            // The first line fixes the columns and where the label (or the targets) are.
            width = fields.size();
            first_row_line = number;
            const std::size_t needed = regression ? options.targets().size() : 1;
            if (width < needed + 1)
                fail(path, number,
                     regression ? "expected " + std::to_string(needed) +
                                      " target columns and at least one feature per row"
                                : std::string("expected a label and at least one feature per row"));
            for (std::size_t c = 0; c < width; ++c)
                names.push_back(options.header() ? "'" + fields[c] + "'"
                                                 : "column " + std::to_string(c));
            // A column given by its index from 0, or by its name in the header.
            auto column_of = [&](const std::string& column, const char* what) {
                std::size_t index = 0;
                if (parse_number(column, index)) {
                    if (index >= width)
                        fail(path, number,
                             std::string(what) + " column " + column +
                                 " is past the last column (" + std::to_string(width) +
                                 " columns)");
                    return index;
                }
                if (!options.header())
                    fail(path, number,
                         std::string(what) + " column '" + column +
                             "' is a name, but the file has no header line: give its index");
                std::size_t c = 0;
                while (c < width && fields[c] != column)
                    ++c;
                if (c == width)
                    fail(path, number, "no column named '" + column + "' in the header");
                return c;
            };
            role.assign(width, -1);
            if (regression) {
                for (std::size_t t = 0; t < options.targets().size(); ++t) {
                    const std::size_t c = column_of(options.targets()[t], "target");
                    if (role[c] != -1)
                        fail(path, number, "target column " + names[c] + " is given twice");
                    role[c] = long(t);
                }
            } else {
                role[column_of(options.label(), "label")] = -2;
            }
            if (options.header()) continue;
        }
        if (fields.size() != width)
            fail(path, number,
                 std::to_string(fields.size()) + " fields, expected " + std::to_string(width) +
                     " as on line " + std::to_string(first_row_line));
        const std::size_t row_values = values.size();
        values.resize(row_values + options.targets().size());
        for (std::size_t c = 0; c < width; ++c) {
            const std::string& field = fields[c];
            if (role[c] == -2) {
                long label = 0;
                if (!parse_number(field, label))
                    fail(path, number, "label '" + field + "' is not an integer");
                if (label < 0 || label > kMaxCsvLabel)
                    fail(path, number,
                         "label " + field + " is out of range (0 to " +
                             std::to_string(kMaxCsvLabel) + ")");
                labels.push_back(int(label));
                continue;
            }
            float value = 0.0f;
            if (!parse_number(field, value) || !std::isfinite(value))
                fail(path, number,
                     names[c] + ": '" + field + "' is not a finite number" +
                         (field.empty() ? " (empty field)" : ""));
            if (role[c] >= 0)
                values[row_values + std::size_t(role[c])] = value;
            else
                features.push_back(value);
        }
        ++rows;
    }
    if (rows == 0) throw std::runtime_error(path + ": no rows of data");
    const std::size_t outputs = options.targets().size();
    const std::size_t feature_count = width - (regression ? outputs : 1);
    Dataset data{xt::empty<float>({rows, feature_count}), xt::empty<int>({regression ? 0 : rows})};
    std::copy(features.begin(), features.end(), data.inputs.begin());
    std::copy(labels.begin(), labels.end(), data.labels.begin());
    if (regression) {
        data.values = xt::empty<float>({rows, outputs});
        std::copy(values.begin(), values.end(), data.values.begin());
    }
    return data;
}

bool is_csv_folder(const std::string& directory) {
    return std::filesystem::exists(std::filesystem::path(directory) / "train.csv");
}

FashionMnist load_data_folder(const std::string& directory, const CsvOptions& csv) {
    namespace fs = std::filesystem;
    if (!is_csv_folder(directory)) return load_fashion_mnist(directory);
    const std::string train_path = (fs::path(directory) / "train.csv").string(),
                      test_path = (fs::path(directory) / "test.csv").string();
    if (!fs::exists(test_path))
        throw std::runtime_error(directory + ": train.csv is there but test.csv is not");
    FashionMnist sets{read_csv_dataset(train_path, csv), read_csv_dataset(test_path, csv)};
    if (sets.train.inputs.shape(1) != sets.test.inputs.shape(1))
        throw std::runtime_error(test_path + ": " + std::to_string(sets.test.inputs.shape(1)) +
                                 " features per row, but " + train_path + " has " +
                                 std::to_string(sets.train.inputs.shape(1)));
    return sets;
}

}  // namespace bnlab
