// Compares any number of JSONL training logs: a per-epoch table, a table per variant, and a plot
//   build/bin/curves runs/paper-20261124-101500/*.jsonl --out paper
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "framework/experiment/report.hpp"

int main(int argc, char** argv) {
    using namespace bnlab;
    CLI::App app{
        "Reads JSONL logs written by train or compare_bn, prints their test accuracy and "
        "training loss per epoch side by side and a table per variant (runs that differ "
        "only in seed), and plots both against epoch with gnuplot.",
        "curves"};
    std::vector<std::string> paths;
    std::string prefix, title = "bnlab training curves";
    app.add_option("logs", paths, "JSONL logs")->required()->check(CLI::ExistingFile);
    app.add_option("--out", prefix,
                   "Write PREFIX.svg, PREFIX.png and the gnuplot script PREFIX.gp "
                   "[default: curves beside the first log]");
    app.add_option("--title", title, "Title above the plot")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        std::vector<RunLog> logs;
        for (const std::string& path : paths)
            logs.push_back(read_run_log(path));
        if (prefix.empty()) {
            const std::size_t slash = paths.front().find_last_of('/');
            prefix =
                (slash == std::string::npos ? "" : paths.front().substr(0, slash + 1)) + "curves";
        }
        const std::vector<Variant> variants = group_variants(logs);
        std::printf("%s\n%s\n", epoch_table(variants).c_str(),
                    markdown_table(comparison_rows(variants)).c_str());
        write_curves(variants, prefix, title);
        spdlog::info("wrote {0}.svg, {0}.png and {0}.gp", prefix);
        // A sweep over learning rates or batch sizes (logs of compare_bn --lr or small_batch,
        // several folders' worth together): its table and plot, as compare_variants draws them.
        const std::vector<SweepSeries> sweep = sweep_series(variants);
        if (!sweep.empty()) {
            std::printf("%s\n", markdown_table(stability_rows(sweep)).c_str());
            write_sweep_plot(sweep, prefix + "-" + sweep.front().field, title);
            spdlog::info("wrote {0}-{1}.svg, {0}-{1}.png and {0}-{1}.gp", prefix,
                         sweep.front().field);
        }
        if (has_probes(variants)) {
            write_probe_plots(variants, prefix, title);
            spdlog::info("wrote {0}-probe.svg/.png/.gp and {0}-gradients.svg/.png/.gp", prefix);
        }
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
