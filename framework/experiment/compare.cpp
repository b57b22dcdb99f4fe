#include "framework/experiment/compare.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "framework/atomic_file.hpp"
#include "framework/experiment/report.hpp"

namespace bnlab {

namespace {

// "bn=on" -> "bn-on", "Dense -> BN" -> "Dense----BN"
std::string file_name_of(const std::string& name) {
    std::string file;
    for (unsigned char c : name)
        file += std::isalnum(c) || c == '.' || c == '_' || c == '+' ? char(c) : '-';
    return file;
}

void check_variants(const std::vector<VariantSpec>& variants, const ComparisonOptions& options) {
    if (variants.empty()) throw std::invalid_argument("compare_variants: no variants");
    if (options.seeds() < 1)
        throw std::invalid_argument("compare_variants: seeds must be at least 1, got " +
                                    std::to_string(options.seeds()));
    std::set<std::string> files;
    for (const VariantSpec& variant : variants) {
        if (!variant.build)
            throw std::invalid_argument("compare_variants: variant '" + variant.name +
                                        "' has no build function");
        if (!files.insert(file_name_of(variant.name)).second)
            throw std::invalid_argument("compare_variants: two variants named '" + variant.name +
                                        "' (or alike once made file names)");
    }
}

}  // namespace

ComparisonResult compare_variants(const std::vector<VariantSpec>& variants, const Dataset& train,
                                  const Dataset& test, const ComparisonOptions& options) {
    namespace fs = std::filesystem;
    check_variants(variants, options);
    fs::create_directories(options.out());
    ComparisonResult result;
    for (int s = 0; s < options.seeds(); ++s) {
        const std::uint64_t seed = options.first_seed() + std::uint64_t(s);
        for (const VariantSpec& variant : variants) {
            Rng rng(seed);
            ModelAndOptimizer built = variant.build(rng);
            nlohmann::ordered_json config = options.fit().config();
            config["variant"] = variant.name;
            config.update(variant.config);
            const std::string log =
                (fs::path(options.out()) /
                 (file_name_of(variant.name) + "-seed" + std::to_string(seed) + ".jsonl"))
                    .string();
            FitOptions run = options.fit();
            if (variant.batch_size) {
                run.batch_size(*variant.batch_size);
                config["batch"] = *variant.batch_size;
            }
            run.name(variant.name + " seed=" + std::to_string(seed)).log(log).config(config);
            fit(built.model, *built.optimizer, train, test, rng, run);
            result.log_paths.push_back(log);
        }
    }

    std::vector<RunLog> logs;
    for (const std::string& path : result.log_paths)
        logs.push_back(read_run_log(path));
    const std::vector<Variant> grouped = group_variants(logs);
    result.table = markdown_table(comparison_rows(grouped));
    const std::string prefix = (fs::path(options.out()) / "curves").string();
    write_curves(grouped, prefix, options.title());
    std::vector<std::string> plots{prefix + ".svg"};
    // Variants that differ in learning rate or batch size: the stability table, and final
    // accuracy against the rate or error against the batch size (curves-lr, curves-batch).
    const std::vector<SweepSeries> sweep = sweep_series(grouped);
    if (!sweep.empty()) {
        result.stability_table = markdown_table(stability_rows(sweep));
        write_sweep_plot(sweep, prefix + "-" + sweep.front().field, options.title());
        plots.push_back(prefix + "-" + sweep.front().field + ".svg");
    }
    if (has_probes(grouped)) {
        write_probe_plots(grouped, prefix, options.title());
        plots.push_back(prefix + "-probe.svg");
        plots.push_back(prefix + "-gradients.svg");
    }
    write_report_html((fs::path(options.out()) / "report.html").string(), options.title(), grouped,
                      plots);
    const std::string stability =
        result.stability_table.empty()
            ? ""
            : std::string(sweep.front().field == "batch" ? "\nOver batch sizes"
                                                         : "\nStability over learning rates") +
                  " (diverged: the loss stopped being finite, in the epoch given; stuck: no "
                  "epoch reached 1.5 times chance):\n\n" +
                  result.stability_table;
    write_file_atomically((fs::path(options.out()) / "table.md").string(),
                          "# " + options.title() + "\n\n" +
                              (options.command().empty() ? "" : "`" + options.command() + "`\n\n") +
                              result.table + stability);
    std::printf("\n%s\n%s%s\n", options.title().c_str(), result.table.c_str(), stability.c_str());
    spdlog::info("logs, curves.svg, curves.png, table.md and report.html are in {}", options.out());
    return result;
}

}  // namespace bnlab
