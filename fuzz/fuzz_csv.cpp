// Fuzz target: the CSV reader, with a header and the label by name, and without a header and the
// label by index, as train --data reads train.csv and test.csv.
#include <cmath>

#include "framework/csv.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bnlab::fuzz::write_input(data, size);
    for (const bnlab::CsvOptions& options :
         {bnlab::CsvOptions(), bnlab::CsvOptions().header(false).label("0")}) {
        bnlab::fuzz::expect_clear_error([&](const std::string& path) {
            const bnlab::Dataset dataset = bnlab::read_csv_dataset(path, options);
            if (dataset.size() == 0 || dataset.inputs.shape(0) != dataset.size()) std::abort();
            for (int label : dataset.labels)
                if (label < 0 || label > bnlab::kMaxCsvLabel) std::abort();
            for (float value : dataset.inputs)
                if (!std::isfinite(value)) std::abort();
        });
    }
    return 0;
}
