// CSV data: good files read to the value, every kind of bad file one error naming the file, the
// line and the problem; data folders of CSV or IDX; train on a CSV folder.
#include <fstream>

#include "experiment_helpers.hpp"
#include "framework/csv.hpp"

using namespace bnlab;
using namespace bnlab::testing;

namespace {

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
    const std::string path = dir / name;
    std::ofstream(path) << text;
    return path;
}

}  // namespace

TEST_CASE("A CSV file with a header: features in file order, the label by name, anywhere") {
    TempDir dir;
    const std::string path = write(dir, "data.csv",
                                   "# measured 2026-11-25\n"
                                   "height, label ,weight\r\n"
                                   "1.5,2,-3\r\n"
                                   "\n"
                                   "  0.25 ,0, 1e3\n"
                                   "# a comment between rows\n"
                                   "7,1,8\n");
    const Dataset data = read_csv_dataset(path);
    REQUIRE(data.size() == 3);
    REQUIRE(data.inputs.shape(1) == 2);
    CHECK(data.inputs(0, 0) == 1.5f);
    CHECK(data.inputs(0, 1) == -3.0f);
    CHECK(data.inputs(1, 0) == 0.25f);
    CHECK(data.inputs(1, 1) == 1000.0f);
    CHECK(data.inputs(2, 1) == 8.0f);
    CHECK(data.labels(0) == 2);
    CHECK(data.labels(1) == 0);
    CHECK(data.labels(2) == 1);
}

TEST_CASE("A CSV file without a header: the label by index, another delimiter") {
    TempDir dir;
    const std::string path = write(dir, "data.csv", "0.5;3;9\n1;4;0\n");
    const Dataset data =
        read_csv_dataset(path, CsvOptions().header(false).label("2").delimiter(';'));
    REQUIRE(data.size() == 2);
    CHECK(data.labels(0) == 9);
    CHECK(data.labels(1) == 0);
    CHECK(data.inputs(1, 0) == 1.0f);
    CHECK(data.inputs(1, 1) == 4.0f);
    // By index with a header too.
    const std::string named = write(dir, "named.csv", "a,b,c\n1,2,3\n");
    CHECK(read_csv_dataset(named, CsvOptions().label("0")).labels(0) == 1);
}

TEST_CASE("Bad CSV files: one error naming the file, the line and the problem") {
    TempDir dir;
    auto error_of = [&](const std::string& text, const CsvOptions& options = {}) {
        const std::string path = write(dir, "bad.csv", text);
        const std::string message = message_of([&] { read_csv_dataset(path, options); });
        REQUIRE(message.rfind(path + ":", 0) == 0);
        return message.substr(path.size() + 1);
    };
    CHECK(error_of("x,label\n1,0\nabc,1\n") == "3: 'x': 'abc' is not a finite number");
    CHECK(error_of("x,label\n1.5x,0\n") == "2: 'x': '1.5x' is not a finite number");
    CHECK(error_of("x,y,label\n1,,0\n") == "2: 'y': '' is not a finite number (empty field)");
    CHECK(error_of("x,label\nnan,0\n") == "2: 'x': 'nan' is not a finite number");
    CHECK(error_of("x,label\n1,0\n1,2,3\n") == "3: 3 fields, expected 2 as on line 1");
    CHECK(error_of("x,y,label\n1,2,0\n1,2\n") == "3: 2 fields, expected 3 as on line 1");
    CHECK(error_of("x,label\n1,0,\n") == "2: 3 fields, expected 2 as on line 1");
    CHECK(error_of("x,label\n1,2.5\n") == "2: label '2.5' is not an integer");
    CHECK(error_of("x,label\n1,one\n") == "2: label 'one' is not an integer");
    CHECK(error_of("x,label\n1,-1\n") == "2: label -1 is out of range (0 to 65535)");
    CHECK(error_of("x,label\n1,70000\n") == "2: label 70000 is out of range (0 to 65535)");
    CHECK(error_of("x,y\n1,2\n") == "1: no column named 'label' in the header");
    CHECK(error_of("x,label\n1,2\n", CsvOptions().label("5")) ==
          "1: label column 5 is past the last column (2 columns)");
    CHECK(error_of("1,2\n", CsvOptions().header(false)) ==
          "1: label column 'label' is a name, but the file has no header line: give its index");
    CHECK(error_of("label\n1\n") == "1: expected a label and at least one feature per row");
    CHECK(message_of([&] { read_csv_dataset(write(dir, "empty.csv", "x,label\n\n# none\n")); }) ==
          dir / "empty.csv" + ": no rows of data");
    CHECK(message_of([&] { read_csv_dataset(dir / "missing.csv"); }) ==
          dir / "missing.csv" + ": cannot open the CSV file");
}

TEST_CASE("Data folders: train.csv and test.csv of one width, or IDX files, or an error") {
    TempDir dir;
    write(dir, "train.csv", "a,b,label\n1,2,0\n3,4,1\n");
    CHECK(message_of([&] { load_data_folder(dir.path.string()); }) ==
          dir.path.string() + ": train.csv is there but test.csv is not");
    write(dir, "test.csv", "a,label\n1,0\n");
    CHECK(message_of([&] { load_data_folder(dir.path.string()); }) ==
          dir / "test.csv" + ": 1 features per row, but " + dir / "train.csv" + " has 2");
    write(dir, "test.csv", "a,b,label\n5,6,1\n");
    const FashionMnist sets = load_data_folder(dir.path.string());
    CHECK(sets.train.size() == 2);
    CHECK(sets.test.size() == 1);
    TempDir empty;
    CHECK(
        message_of([&] { load_data_folder(empty.path.string()); })
            .find("neither train-images-idx3-ubyte.gz nor train-images-idx3-ubyte is there (a data "
                  "folder holds the four IDX files of Fashion-MNIST or MNIST, or train.csv and "
                  "test.csv)") != std::string::npos);
}

TEST_CASE("train on a CSV folder: the model's first layer and classes follow the data") {
    TempDir dir;
    // 3 features; labels 0..4, so 5 classes.
    std::ofstream train(dir / "train.csv"), test(dir / "test.csv");
    train << "f1,f2,f3,class\n";
    test << "f1,f2,f3,class\n";
    for (int i = 0; i < 200; ++i) {
        const int label = i % 5;
        (i < 150 ? train : test) << label * 0.5 << "," << (i % 7) * 0.1 << "," << -label << ","
                                 << label << "\n";
    }
    train.close();
    test.close();
    const std::string log = dir / "run.jsonl";
    const int status =
        wait_for(spawn({kTrain, "--data", dir.path.string(), "--label-column", "class", "--hidden",
                        "8", "--epochs", "2", "--batch", "10", "--threads", "1", "--log", log},
                       dir / "out.txt"));
    REQUIRE_MESSAGE(status == 0, read_text(dir / "out.txt"));
    const std::vector<nlohmann::ordered_json> lines = read_lines(log);
    const nlohmann::ordered_json& header = lines.front();
    CHECK(header.at("model").at("layers").front() == "Dense(3 -> 8)");
    CHECK(header.at("model").at("layers").back() == "Dense(8 -> 5)");
    CHECK(header.at("data").at("format") == "csv");
    CHECK(header.at("data").at("train_samples") == 150);
    CHECK(header.at("config").at("label_column") == "class");
    CHECK(lines.back().at("type") == "final");
}

TEST_CASE("CSV regression data: target value columns by name or index, the rest features") {
    TempDir dir;
    const std::string path = dir / "houses.csv";
    std::ofstream(path) << "rooms,price,area,age\n3,250.5,80,10\n4,310,95,3\n";
    const Dataset data = read_csv_dataset(path, CsvOptions().targets({"age", "1"}));
    CHECK(data.regression());
    CHECK(data.size() == 2);
    CHECK(data.labels.size() == 0);
    REQUIRE(data.values.shape(1) == 2);
    CHECK(data.values(0, 0) == 10.0f);  // age first, as given
    CHECK(data.values(0, 1) == 250.5f);
    CHECK(data.values(1, 1) == 310.0f);
    REQUIRE(data.inputs.shape(1) == 2);  // rooms, area
    CHECK(data.inputs(1, 0) == 4.0f);
    CHECK(data.inputs(1, 1) == 95.0f);
    CHECK(message_of([&] {
              read_csv_dataset(path, CsvOptions().targets({"price", "1"}));
          }) == path + ":1: target column 'price' is given twice");
    CHECK(message_of([&] { read_csv_dataset(path, CsvOptions().targets({"cost"})); }) ==
          path + ":1: no column named 'cost' in the header");
    CHECK(message_of([&] { read_csv_dataset(path, CsvOptions().targets({"9"})); }) ==
          path + ":1: target column 9 is past the last column (4 columns)");
    CHECK(message_of([&] {
              read_csv_dataset(path, CsvOptions().targets({"rooms", "price", "area", "age"}));
          }) == path + ":1: expected 4 target columns and at least one feature per row");
}
