#pragma once
// Checkpoints: a model's architecture and every value that defines it (parameters, BatchNorm's
// running statistics and counters), optionally an optimizer's state, and any further sections
// a program adds, in one versioned, self-describing file:
//   "BNLABCKP", u32 format version, u32 number of sections, then per section
//   a 4-character tag, u64 payload length, the payload, u32 zlib crc32 of the payload.
// Numbers are little-endian (the byte order of the machines bnlab runs on). Sections:
//   MODL  the architecture as text, one layer a line ("Dense 784 100", "BatchNorm 100 1e-05
//         0.1 1", "ReLU", "Conv2d 1 16 3 1 1 1" (in, out, kernel, stride, padding, bias),
//         "MaxPool2d 2 2 0", "Dropout 0.5", "Sequential 3" followed by its 3 layers,
//         "Residual 1 1" (ReLU after the sum, has a shortcut) followed by its body's
//         "Sequential" line and layers, then its shortcut's), after "Input 1 28 28" for a
//         model of images
//   TENS  named float32 arrays: every parameter and buffer ("0.weight", "1.running_mean",
//         "3.body.0.weight", …)
//   CNTS  named integers ("1.num_batches_tracked", …)
//   OPTC, OPTS  an optimizer's counters and arrays ("steps"; "momentum.0", …)
// Files are written atomically (see atomic_file.hpp).
//   save_model("model.bnlab", model);            Sequential copy = load_model("model.bnlab");

#include <cstdint>
#include <map>
#include <string>

#include "framework/optimizer.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

inline constexpr std::uint32_t kCheckpointVersion = 1;

// Writes `model`, the optimizer's state when given, and the `extra` sections (4-character tags
// other than the ones above, with any bytes) to `path`.
void save_checkpoint(const std::string& path, Sequential& model,
                     BasicOptimizer<float>* optimizer = nullptr,
                     const std::map<std::string, std::string>& extra = {});

// A checkpoint file read whole and checked: magic number, format version, every section's
// length and checksum. Every error is a std::runtime_error "path: problem".
class Checkpoint {
  public:
    static Checkpoint read(const std::string& path);

    // A new model with the file's architecture and values.
    Sequential model() const;
    // Loads the values into `model`, whose architecture must be the file's: a difference is an
    // error naming the first layer that differs.
    void load_into(Sequential& model) const;
    // Loads the optimizer's state; the file must hold the state of the same kind of optimizer
    // for the same parameters.
    void load_optimizer(BasicOptimizer<float>& optimizer) const;

    // A section's bytes, or nullptr when the file has none with that tag.
    const std::string* section(const std::string& tag) const;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    std::map<std::string, std::string> sections_;
};

void save_model(const std::string& path, Sequential& model);
Sequential load_model(const std::string& path);

}  // namespace bnlab
