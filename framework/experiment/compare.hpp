#pragma once
// Comparisons of named variants over several seeds, as `compare_bn` makes them and user code can:
// every run trained by fit() with its own log, then the comparison table, the curves (and the
// probe's plots for probed runs), table.md and a self-contained report.html, all in one folder.
//   std::vector<VariantSpec> variants = {
//       {"with BN", [](Rng& rng) { return ModelAndOptimizer{…}; }},
//       {"without", …}};
//   compare_variants(variants, data.train, data.test,
//                    ComparisonOptions().seeds(3).out("runs/mine").title("BN or not")
//                        .fit(FitOptions().epochs(10).batch_size(128)));
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/experiment/trainer.hpp"

namespace bnlab {

struct ModelAndOptimizer {
    Sequential model;
    std::unique_ptr<BasicOptimizer<float>> optimizer;  // on model's parameters
};

struct VariantSpec {
    std::string name;  // labels the variant's rows and curves, and names its logs
    // Builds the model and its optimizer from the run's seeded generator, which fit() then
    // shuffles the batches with: the same seed gives the same run.
    std::function<ModelAndOptimizer(Rng&)> build;
    // Fields merged into the run's configuration record (e.g. {"bn": "on"}).
    nlohmann::ordered_json config = nlohmann::ordered_json::object();
    // The variant's own batch size (recorded as "batch"), or the comparison's.
    std::optional<std::size_t> batch_size = std::nullopt;
};

class ComparisonOptions {
  public:
    // Runs per variant, with seeds first_seed, first_seed + 1, …
    ComparisonOptions& seeds(int value) { return seeds_ = value, *this; }
    ComparisonOptions& first_seed(std::uint64_t value) { return first_seed_ = value, *this; }
    // The folder for the logs, plots, table.md and report.html (made if missing).
    ComparisonOptions& out(std::string value) { return out_ = std::move(value), *this; }
    // Heads the plots, table.md and the report.
    ComparisonOptions& title(std::string value) { return title_ = std::move(value), *this; }
    // Recorded in table.md under the title, e.g. the command line.
    ComparisonOptions& command(std::string value) { return command_ = std::move(value), *this; }
    // Every run's options (epochs, batch size, target, probe, threads, …); the comparison sets
    // each run's name and log.
    ComparisonOptions& fit(FitOptions value) { return fit_ = std::move(value), *this; }
    int seeds() const { return seeds_; }
    std::uint64_t first_seed() const { return first_seed_; }
    const std::string& out() const { return out_; }
    const std::string& title() const { return title_; }
    const std::string& command() const { return command_; }
    const FitOptions& fit() const { return fit_; }

  private:
    int seeds_ = 3;
    std::uint64_t first_seed_ = 1;
    std::string out_ = "runs/comparison";
    std::string title_ = "bnlab comparison";
    std::string command_;
    FitOptions fit_;
};

struct ComparisonResult {
    std::vector<std::string> log_paths;  // seed by seed, the variants in order within each
    std::string table;                   // the comparison table, Markdown
    // When the variants differ in learning rate or batch size: the stability table (report.hpp's
    // stability_rows), Markdown; curves-lr.svg/png draw final accuracy against the rate, or
    // curves-batch.svg/png final error against the batch size.
    std::string stability_table;
};

// Trains every variant for every seed (seed-major, so a cut-short comparison has whole seeds),
// writes the folder described above, and prints the title and the table on stdout. Logs are
// <name>-seed<seed>.jsonl, the name with characters other than letters, digits, '.', '_' and '+'
// turned into '-'. Throws std::invalid_argument for no variants, repeated names or fewer than one
// seed, before training; and whatever fit() or the plots throw.
ComparisonResult compare_variants(const std::vector<VariantSpec>& variants, const Dataset& train,
                                  const Dataset& test, const ComparisonOptions& options);

}  // namespace bnlab
