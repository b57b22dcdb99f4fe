#include "framework/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace bnlab {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw std::runtime_error(path + ": " + problem);
}

struct GzCloser {
    void operator()(gzFile_s* file) const { gzclose(file); }
};

// Reads up to `size` bytes; returns how many were read. Throws on a corrupt stream.
std::size_t read_some(gzFile file, const std::string& path, void* destination, std::size_t size) {
    std::size_t total = 0;
    auto* bytes = static_cast<unsigned char*>(destination);
    while (total < size) {
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(size - total, 1u << 30));
        const int got = gzread(file, bytes + total, chunk);
        if (got < 0) {
            int code = 0;
            const char* message = gzerror(file, &code);
            fail(path, std::string("corrupt or unreadable gzip data (") + message + ")");
        }
        if (got == 0) break;
        total += static_cast<std::size_t>(got);
    }
    return total;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
    std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
    if (!file) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");

    // Magic number: two zero bytes, the data type, the number of dimensions.
    unsigned char magic[4];
    if (read_some(file.get(), path, magic, 4) != 4) fail(path, "truncated: no IDX header");
    if (magic[0] != 0 || magic[1] != 0)
        fail(path, "not an IDX file (bad magic number: first two bytes must be zero)");
    if (magic[2] != 0x08) {
        char type[8];
        std::snprintf(type, sizeof type, "0x%02X", magic[2]);
        fail(path,
             std::string("unsupported IDX data type ") + type + " (only unsigned bytes, 0x08)");
    }
    if (magic[3] == 0 || magic[3] > 4)
        fail(path, "unsupported number of dimensions " + std::to_string(magic[3]) + " (1 to 4)");

    IdxArray array;
    std::size_t count = 1;
    for (int d = 0; d < magic[3]; ++d) {
        unsigned char size[4];
        if (read_some(file.get(), path, size, 4) != 4)
            fail(path, "truncated: header ends before dimension " + std::to_string(d + 1));
        // Dimensions are big-endian 32-bit.
        const std::size_t dimension = (std::size_t(size[0]) << 24) | (std::size_t(size[1]) << 16) |
                                      (std::size_t(size[2]) << 8) | std::size_t(size[3]);
        if (dimension == 0) fail(path, "dimension " + std::to_string(d + 1) + " is zero");
        array.dimensions.push_back(dimension);
        count *= dimension;
        if (count > (std::size_t(1) << 34)) fail(path, "dimensions too large");
    }

    // The header's sizes are not trusted with memory: the data is read in chunks, so a 40-byte
    // file that claims 16 GiB of data fails as truncated after reading 40 bytes, not after
    // allocating 16 GiB.
    constexpr std::size_t kChunk = std::size_t(1) << 20;
    std::size_t got = 0;
    while (got < count) {
        const std::size_t wanted = std::min(kChunk, count - got);
        array.data.resize(got + wanted);
        const std::size_t read = read_some(file.get(), path, array.data.data() + got, wanted);
        got += read;
        if (read < wanted) break;
    }
    if (got != count)
        fail(path, "truncated: expected " + std::to_string(count) + " bytes of data, got " +
                       std::to_string(got));
    unsigned char extra;
    if (read_some(file.get(), path, &extra, 1) != 0)
        fail(path, "unexpected bytes after the " + std::to_string(count) + " bytes of data");
    return array;
}

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      std::size_t classes) {
    const IdxArray images = read_idx(images_path);
    const IdxArray labels = read_idx(labels_path);
    if (images.dimensions.size() != 3)
        fail(images_path, "expected 3 dimensions (images, rows, columns), got " +
                              std::to_string(images.dimensions.size()));
    if (labels.dimensions.size() != 1)
        fail(labels_path,
             "expected 1 dimension (labels), got " + std::to_string(labels.dimensions.size()));
    const std::size_t count = images.dimensions[0];
    if (labels.dimensions[0] != count)
        fail(labels_path, std::to_string(labels.dimensions[0]) + " labels for the " +
                              std::to_string(count) + " images of " + images_path);

    const std::size_t features = images.dimensions[1] * images.dimensions[2];
    Dataset data{xt::empty<float>({count, features}),
                 xt::empty<int>({count}),
                 {1, images.dimensions[1], images.dimensions[2]}};
    // Pixels 0..255 -> [0, 1]
    for (std::size_t i = 0; i < images.data.size(); ++i)
        data.inputs.data()[i] = static_cast<float>(images.data[i]) / 255.0f;
    for (std::size_t i = 0; i < count; ++i) {
        if (labels.data[i] >= classes)
            fail(labels_path, "label " + std::to_string(labels.data[i]) + " at index " +
                                  std::to_string(i) + " is not below " + std::to_string(classes));
        data.labels(i) = labels.data[i];
    }
    return data;
}

FashionMnist load_fashion_mnist(const std::string& directory) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(directory))
        throw std::runtime_error(
            directory +
            ": no such data folder (Fashion-MNIST comes with Debian's "
            "dataset-fashion-mnist package: apt-get install dataset-fashion-mnist)");
    auto file = [&](const std::string& name) {
        const fs::path gz = fs::path(directory) / (name + ".gz"),
                       plain = fs::path(directory) / name;
        if (fs::exists(gz)) return gz.string();
        if (fs::exists(plain)) return plain.string();
        throw std::runtime_error(directory + ": neither " + name + ".gz nor " + name +
                                 " is there (a data folder holds the four IDX files of "
                                 "Fashion-MNIST or MNIST, or train.csv and test.csv)");
    };
    // Looked up in order, so that a folder without any of them names the first.
    const std::string train_images = file("train-images-idx3-ubyte");
    const std::string train_labels = file("train-labels-idx1-ubyte");
    const std::string test_images = file("t10k-images-idx3-ubyte");
    const std::string test_labels = file("t10k-labels-idx1-ubyte");
    return {load_idx_pair(train_images, train_labels), load_idx_pair(test_images, test_labels)};
}

}  // namespace bnlab
