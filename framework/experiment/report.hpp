#pragma once
// What `curves` and `compare_bn` make of any number of run logs: runs grouped into variants
// (runs whose configurations differ only in seed, threads, data folder or log path), a table
// comparing the variants, a side-by-side per-epoch table, plots drawn by gnuplot, and a
// self-contained HTML report.

#include <string>
#include <vector>

#include "framework/atomic_file.hpp"
#include "framework/experiment/run_log.hpp"

namespace bnlab {

struct Variant {
    std::string label;                // what sets it apart from the others, e.g. "bn=on"
    std::vector<const RunLog*> runs;  // in the order given
};

// Groups `logs` (which must outlive the result) by configuration, in order of first appearance.
std::vector<Variant> group_variants(const std::vector<RunLog>& logs);

// One row per variant: variant, runs, target, epochs to target (mean ± sd over the runs that
// reached it), how many reached it (diverged runs count as not reaching it), best and final
// test accuracy (mean ± sd), training seconds per epoch. The first row holds the headers.
std::vector<std::vector<std::string>> comparison_rows(const std::vector<Variant>& variants);

// The rows as a Markdown table (aligned, so it reads as plain text too).
std::string markdown_table(const std::vector<std::vector<std::string>>& rows);

// Per epoch, each run's test accuracy and training loss side by side, after a key of the runs.
std::string epoch_table(const std::vector<Variant>& variants);

// Writes PREFIX.svg and PREFIX.png: test accuracy and training loss against epoch, one colour
// per variant, each run a thin line and the variant's mean a thick one; also PREFIX.gp, the
// gnuplot script (with the data inside) that drew them. Files appear whole or not at all.
// Throws std::runtime_error when gnuplot is missing or fails, with its message.
void write_curves(const std::vector<Variant>& variants, const std::string& prefix,
                  const std::string& title);

// Whether any run of `variants` has probe points (train --probe).
bool has_probes(const std::vector<Variant>& variants);

// For probed runs (the first probed run of each variant): PREFIX-probe.svg/.png, the 15th, 50th
// and 85th percentiles of each hidden layer's activation input against training step, a row per
// layer and a column per variant (the BN paper's Figure 1(b,c)); and PREFIX-gradients.svg/.png,
// each hidden layer's weight-gradient norm against step, a panel per variant. Throws when no run
// has probe points, or as write_curves does.
void write_probe_plots(const std::vector<Variant>& variants, const std::string& prefix,
                       const std::string& title);

// A sweep: the runs of `variants` by what sets them apart but the swept field (`label`, as
// group_variants labels), then by the field's value. Two kinds: a learning-rate sweep (the
// stabilization effect), and a batch-size sweep (the small-batch experiment), whose learning
// rate may change with the batch.
struct SweepSeries {
    std::string field;  // "lr" or "batch"
    std::string label;
    std::vector<std::pair<double, std::vector<const RunLog*>>> runs_by_value;  // rising
};
// Empty unless the runs have at least two batch sizes ("batch" in their configurations, then a
// batch-size sweep) or two learning rates ("lr").
std::vector<SweepSeries> sweep_series(const std::vector<Variant>& variants);

// One row per swept value and series: lr (or batch), variant, runs, best and final test accuracy
// (mean ± sd over the runs with an epoch), epochs to target (mean ± sd over the runs that
// reached it), how many diverged (with their epochs) and how many were stuck at chance. The first
// row holds the headers.
std::vector<std::vector<std::string>> stability_rows(const std::vector<SweepSeries>& series);

// PREFIX.svg/.png/.gp: a line per series through the mean of its runs that did not diverge, each
// run a point, diverged runs crosses: final test accuracy against learning rate (log axis), or
// final test error against batch size (log axis, the Group Normalization paper's Figure 1).
void write_sweep_plot(const std::vector<SweepSeries>& series, const std::string& prefix,
                      const std::string& title);

// A single HTML file a browser opens from disk: title, the comparison table, the SVG plots
// inline, the per-epoch table, and each variant's configuration, model and library versions;
// for a learning-rate sweep, the stability table too.
void write_report_html(const std::string& path, const std::string& title,
                       const std::vector<Variant>& variants,
                       const std::vector<std::string>& svg_paths);

}  // namespace bnlab
