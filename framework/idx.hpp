#pragma once
// Reading IDX files (the MNIST / Fashion-MNIST format), gzip'd or plain, and loading
// Fashion-MNIST into a Dataset.

#include <cstdint>
#include <string>
#include <vector>

#include "framework/data.hpp"

namespace bnlab {

// An IDX file of unsigned bytes: its dimensions and its data, row-major.
struct IdxArray {
    std::vector<std::size_t> dimensions;
    std::vector<std::uint8_t> data;
};

// Reads an IDX file of unsigned bytes (type 0x08), gzip'd or plain (zlib reads both). Throws
// std::runtime_error naming the file and the problem: cannot open, bad magic number,
// unsupported type, truncated header or data, extra bytes after the data, corrupt gzip stream.
IdxArray read_idx(const std::string& path);

// Images [n, rows, cols] and labels [n] of one IDX pair as a Dataset: pixels scaled to [0, 1],
// one row of rows * cols features per image. Throws when the counts differ or a label is not
// below `classes`.
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      std::size_t classes = 10);

// Debian's dataset-fashion-mnist puts the files here.
inline const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnist {
    Dataset train;  // 60000 images
    Dataset test;   // 10000 images
};

// Loads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte from `directory`, each gzip'd (.gz) or plain.
FashionMnist load_fashion_mnist(const std::string& directory = kFashionMnistDir);

}  // namespace bnlab
