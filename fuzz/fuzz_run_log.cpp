// Fuzz target: the JSONL log reader and what `curves` computes from a log before plotting
// (variants, the per-epoch table, the comparison table).
#include "framework/experiment/report.hpp"
#include "framework/experiment/run_log.hpp"
#include "fuzz/harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bnlab::fuzz::write_input(data, size);
    bnlab::fuzz::expect_clear_error([](const std::string& path) {
        const std::vector<bnlab::RunLog> logs = {bnlab::read_run_log(path)};
        const std::vector<bnlab::Variant> variants = bnlab::group_variants(logs);
        bnlab::epoch_table(variants);
        bnlab::markdown_table(bnlab::comparison_rows(variants));
        bnlab::has_probes(variants);
    });
    return 0;
}
