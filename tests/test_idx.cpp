// The IDX reader on small files the test writes (plain and gzip'd), on corrupt ones, and on
// the real Fashion-MNIST installed by the install step.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "helpers.hpp"

using namespace bnlab;
using namespace bnlab::testing;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dimensions,
                                    const std::vector<std::uint8_t>& data, std::uint8_t type = 8) {
    std::vector<std::uint8_t> bytes{0, 0, type, std::uint8_t(dimensions.size())};
    for (std::uint32_t d : dimensions)
        for (int shift = 24; shift >= 0; shift -= 8)
            bytes.push_back(std::uint8_t(d >> shift));
    bytes.insert(bytes.end(), data.begin(), data.end());
    return bytes;
}

void write_plain(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    gzFile file = gzopen(path.c_str(), "wb");
    REQUIRE(file != nullptr);
    REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
    gzclose(file);
}

std::vector<std::uint8_t> pixels(std::size_t count) {
    std::vector<std::uint8_t> data(count);
    for (std::size_t i = 0; i < count; ++i)
        data[i] = std::uint8_t(i * 37 % 256);
    return data;
}

}  // namespace

TEST_CASE("IDX files are read the same plain and gzip'd, pixels scaled to [0, 1]") {
    TempDir dir;
    const auto images = idx_bytes({3, 2, 2}, pixels(12));
    const auto labels = idx_bytes({3}, {7, 0, 9});
    write_plain(dir / "images", images);
    write_plain(dir / "labels", labels);
    write_gzip(dir / "images.gz", images);
    write_gzip(dir / "labels.gz", labels);

    const IdxArray raw = read_idx(dir / "images.gz");
    CHECK(raw.dimensions == std::vector<std::size_t>{3, 2, 2});
    CHECK(raw.data == pixels(12));
    const Dataset plain = load_idx_pair(dir / "images", dir / "labels");
    const Dataset gzipped = load_idx_pair(dir / "images.gz", dir / "labels.gz");
    CHECK(plain.inputs == gzipped.inputs);
    CHECK(plain.labels == gzipped.labels);
    CHECK(plain.inputs.shape(0) == 3);
    CHECK(plain.inputs.shape(1) == 4);
    CHECK(plain.inputs(1, 0) == doctest::Approx(pixels(12)[4] / 255.0));
    CHECK(plain.labels(2) == 9);
}

TEST_CASE("Corrupt IDX files are errors naming the file and the problem") {
    TempDir dir;
    auto error_for = [&](const std::vector<std::uint8_t>& bytes) {
        write_plain(dir / "bad", bytes);
        return message_of([&] { read_idx(dir / "bad"); });
    };
    const std::string bad = dir / "bad";
    CHECK(error_for({}) == bad + ": truncated: no IDX header");
    CHECK(error_for({1, 0, 8, 1, 0, 0, 0, 1, 5}) ==
          bad + ": not an IDX file (bad magic number: first two bytes must be zero)");
    CHECK(error_for(idx_bytes({2}, {1, 2}, 0x0D)) ==
          bad + ": unsupported IDX data type 0x0D (only unsigned bytes, 0x08)");
    CHECK(error_for({0, 0, 8, 3, 0, 0, 0, 2}) ==
          bad + ": truncated: header ends before dimension 2");
    CHECK(error_for(idx_bytes({2, 3}, pixels(5))) ==
          bad + ": truncated: expected 6 bytes of data, got 5");
    CHECK(error_for(idx_bytes({2}, {1, 2, 3})) ==
          bad + ": unexpected bytes after the 2 bytes of data");
    CHECK(error_for(idx_bytes({0}, {})) == bad + ": dimension 1 is zero");

    // A gzip stream cut short.
    write_gzip(dir / "whole.gz", idx_bytes({100, 10, 10}, pixels(10000)));
    std::ifstream whole(dir / "whole.gz", std::ios::binary);
    std::vector<char> compressed((std::istreambuf_iterator<char>(whole)), {});
    compressed.resize(compressed.size() / 2);
    std::ofstream(dir / "cut.gz", std::ios::binary)
        .write(compressed.data(), std::streamsize(compressed.size()));
    const std::string cut = message_of([&] { read_idx(dir / "cut.gz"); });
    CHECK(cut.rfind(dir / "cut.gz" + ": ", 0) == 0);
    CHECK((cut.find("truncated") != std::string::npos || cut.find("corrupt") != std::string::npos));

    CHECK(message_of([&] { read_idx(dir / "missing"); }) ==
          dir / "missing" + ": cannot open (No such file or directory)");
}

TEST_CASE("Images and labels that do not match are errors naming both files") {
    TempDir dir;
    write_plain(dir / "images", idx_bytes({3, 2, 2}, pixels(12)));
    write_plain(dir / "labels", idx_bytes({2}, {1, 2}));
    write_plain(dir / "big_labels", idx_bytes({3}, {1, 10, 2}));
    CHECK(message_of([&] { load_idx_pair(dir / "images", dir / "labels"); }) ==
          dir / "labels" + ": 2 labels for the 3 images of " + dir / "images");
    CHECK(message_of([&] { load_idx_pair(dir / "images", dir / "big_labels"); }) ==
          dir / "big_labels" + ": label 10 at index 1 is not below 10");
    CHECK(message_of([&] { load_idx_pair(dir / "labels", dir / "labels"); }) ==
          dir / "labels" + ": expected 3 dimensions (images, rows, columns), got 1");
    CHECK(message_of([&] { load_fashion_mnist(dir / "nowhere"); }) ==
          dir / "nowhere" +
              ": no such data folder (Fashion-MNIST comes with Debian's dataset-fashion-mnist "
              "package: apt-get install dataset-fashion-mnist)");
    CHECK(message_of([&] { load_fashion_mnist(dir.path.string()); }) ==
          dir.path.string() +
              ": neither train-images-idx3-ubyte.gz nor train-images-idx3-ubyte is there (a data "
              "folder holds the four IDX files of "
              "Fashion-MNIST or MNIST, or train.csv and test.csv)");
}

TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist: 60000 + 10000 images, balanced") {
    const FashionMnist data = load_fashion_mnist();
    REQUIRE(data.train.inputs.shape(0) == 60000);
    REQUIRE(data.test.inputs.shape(0) == 10000);
    CHECK(data.train.inputs.shape(1) == 784);
    std::vector<int> train_counts(10), test_counts(10);
    for (int label : data.train.labels)
        ++train_counts[std::size_t(label)];
    for (int label : data.test.labels)
        ++test_counts[std::size_t(label)];
    CHECK(train_counts == std::vector<int>(10, 6000));
    CHECK(test_counts == std::vector<int>(10, 1000));
    CHECK(xt::amin(data.train.inputs)() == 0.0f);
    CHECK(xt::amax(data.train.inputs)() == 1.0f);
}
