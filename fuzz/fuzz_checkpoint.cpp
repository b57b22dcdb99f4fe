// Fuzz target: the checkpoint loader, whole: the framing, the model's layer list, the tensors,
// the counters and the optimizer state, loaded into the model the file describes and into SGD
// with momentum and Adam for it, and the training state `train --resume` reads.
//
// Each section's crc32 would stop almost every mutated input at the framing, so the target first
// rewrites the stored checksums to match (where the framing lets it find them); the checksum
// check itself is tested by tests/test_checkpoint.cpp. An input whose first byte is odd keeps
// its checksums, so the framing and the crc check are fuzzed too.
#include <zlib.h>

#include <cstring>
#include <vector>

#include "framework/checkpoint.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/optimizer.hpp"
#include "fuzz/harness.hpp"

namespace {

// The layout save_checkpoint writes: "BNLABCKP", u32 version, u32 section count, then per
// section: 4-byte tag, u64 length, payload, u32 crc32 of the payload.
void fix_checksums(std::vector<std::uint8_t>& bytes) {
    std::size_t position = 16;
    while (position + 12 <= bytes.size()) {
        std::uint64_t length = 0;
        std::memcpy(&length, bytes.data() + position + 4, sizeof length);
        position += 12;
        if (length > bytes.size() - position || bytes.size() - position - length < 4) return;
        const auto crc = std::uint32_t(crc32(0L, bytes.data() + position, uInt(length)));
        std::memcpy(bytes.data() + position + length, &crc, sizeof crc);
        position += length + 4;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::vector<std::uint8_t> bytes(data + 1, data + size);
    if (data[0] % 2 == 0) fix_checksums(bytes);
    bnlab::fuzz::write_input(bytes.data(), bytes.size());
    bnlab::fuzz::expect_clear_error([](const std::string& path) {
        const bnlab::Checkpoint checkpoint = bnlab::Checkpoint::read(path);
        bnlab::Sequential model = checkpoint.model();
        if (checkpoint.section("TRAN")) bnlab::saved_config(path);
        if (!checkpoint.section("OPTC")) return;
        bnlab::SGD sgd(model.parameters(), bnlab::SGDOptions(0.1).momentum(0.9));
        bnlab::Adam adam(model.parameters(), bnlab::AdamOptions());
        for (bnlab::BasicOptimizer<float>* optimizer :
             {static_cast<bnlab::BasicOptimizer<float>*>(&sgd),
              static_cast<bnlab::BasicOptimizer<float>*>(&adam)}) {
            try {
                checkpoint.load_optimizer(*optimizer);
            } catch (const std::runtime_error& error) {
                // The other optimizer's state is a clear error too, and must name the file.
                if (std::string(error.what()).rfind(path, 0) != 0)
                    throw std::logic_error(error.what());
            }
        }
    });
    return 0;
}
