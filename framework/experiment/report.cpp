#include "framework/experiment/report.hpp"

#include "framework/atomic_file.hpp"
#include "framework/tensor.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace bnlab {

namespace {

// Fields that do not make a different variant: runs differing only in these are repeats.
// Probing does not change training either: it reads the model between steps in eval mode.
const char* const kRepeatFields[] = {"seed", "threads", "data", "log", "probe", "probe_points"};

nlohmann::ordered_json variant_key(const RunLog& log) {
    nlohmann::ordered_json key = log.config();
    for (const char* field : kRepeatFields)
        key.erase(field);
    // A run without a world is one process's: so labelled beside data-parallel runs.
    if (key.is_object() && !key.contains("world_size")) key["world_size"] = 1;
    return key;
}

std::string field_text(const nlohmann::ordered_json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_array()) {
        std::string text;
        for (const nlohmann::ordered_json& item : value)
            text += (text.empty() ? "" : ",") + field_text(item);
        return text;
    }
    return value.dump();
}

std::string fixed(double value, int digits) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", digits, value);
    return text;
}

// "4.7 ± 1.2" (sample standard deviation), or just the mean of a single value.
std::string mean_sd(const std::vector<double>& values, int digits) {
    if (values.empty()) return "-";
    double sum = 0.0;
    for (double value : values)
        sum += value;
    const double mean = sum / double(values.size());
    if (values.size() == 1) return fixed(mean, digits);
    double squares = 0.0;
    for (double value : values)
        squares += (value - mean) * (value - mean);
    return fixed(mean, digits) + " ± " +
           fixed(std::sqrt(squares / double(values.size() - 1)), digits);
}

std::string html_escape(const std::string& text) {
    std::string escaped;
    for (char c : text) {
        switch (c) {
            case '&':
                escaped += "&amp;";
                break;
            case '<':
                escaped += "&lt;";
                break;
            case '>':
                escaped += "&gt;";
                break;
            case '"':
                escaped += "&quot;";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

std::string read_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream contents;
    contents << file.rdbuf();
    return contents.str();
}

// A gnuplot single-quoted string: quotes are doubled.
std::string gnuplot_quoted(const std::string& text) {
    std::string quoted = "'";
    for (char c : text)
        quoted += c == '\'' ? std::string("''") : std::string(1, c);
    return quoted + "'";
}

// A gnuplot double-quoted string, where "\n" breaks the line: backslashes and quotes escaped.
std::string gnuplot_lines(const std::vector<std::string>& lines) {
    std::string quoted = "\"";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) quoted += "\\n";
        for (char c : lines[i]) {
            if (c == '\\' || c == '"') quoted += '\\';
            quoted += c;
        }
    }
    return quoted + "\"";
}

std::string capitalized(std::string text) {
    if (!text.empty()) text[0] = char(std::toupper(static_cast<unsigned char>(text[0])));
    return text;
}

const char* const kColours[] = {"1f77b4", "d62728", "2ca02c", "9467bd",
                                "ff7f0e", "8c564b", "e377c2", "17becf"};

// What the runs' epochs are judged by, in words: "test accuracy", "validation accuracy",
// "test R²" or "validation R²" (from the first run with an epoch).
std::string judged_name(const std::vector<Variant>& variants, bool short_form = false) {
    for (const Variant& variant : variants)
        for (const RunLog* run : variant.runs)
            if (!run->epochs.empty()) {
                const EpochStats& epoch = run->epochs.front();
                const std::string set =
                    epoch.val_acc ? (short_form ? "val" : "validation") : "test";
                return set + " " + (epoch.regression ? "R²" : short_form ? "acc" : "accuracy");
            }
    return short_form ? "test acc" : "test accuracy";
}

// Mean judged accuracy (test or validation; R² for a regression) and training loss per epoch
// over the runs that have that epoch.
std::vector<std::array<double, 3>> variant_means(const Variant& variant) {
    std::map<int, std::array<double, 3>> sums;  // epoch -> accuracy, loss, count
    for (const RunLog* run : variant.runs)
        for (const EpochStats& epoch : run->epochs) {
            std::array<double, 3>& sum = sums[epoch.epoch];
            sum[0] += judged_acc(epoch);
            sum[1] += epoch.train_loss;
            sum[2] += 1.0;
        }
    std::vector<std::array<double, 3>> means;
    for (const auto& [epoch, sum] : sums)
        means.push_back({double(epoch), sum[0] / sum[2], sum[1] / sum[2]});
    return means;
}

// The data as gnuplot datablocks, and the commands that draw both panels from them.
struct GnuplotScript {
    std::string data;
    std::string panels;
};

GnuplotScript gnuplot_script(const std::vector<Variant>& variants, const std::string& title) {
    std::ostringstream script;
    script.precision(9);
    script << "# Drawn by bnlab's curves; run `gnuplot THIS_FILE` to draw it again.\n";
    std::ostringstream accuracy_plot, loss_plot;
    for (std::size_t v = 0; v < variants.size(); ++v) {
        const std::string colour = kColours[v % std::size(kColours)];
        for (std::size_t r = 0; r < variants[v].runs.size(); ++r) {
            const std::string block = "$run_" + std::to_string(v) + "_" + std::to_string(r);
            script << block << " << EOD\n# " << variants[v].runs[r]->path << "\n";
            for (const EpochStats& epoch : variants[v].runs[r]->epochs)
                script << epoch.epoch << ' ' << judged_acc(epoch) << ' ' << epoch.train_loss
                       << '\n';
            script << "EOD\n";
            // Thin and translucent, in the variant's colour: one line per seed.
            const std::string style = " with lines lw 1 lc rgb '#70" + colour + "' notitle, ";
            accuracy_plot << block << " using 1:2" << style;
            loss_plot << block << " using 1:3" << style;
        }
        const std::string mean_block = "$mean_" + std::to_string(v);
        script << mean_block << " << EOD\n";
        for (const auto& [epoch, accuracy, loss] : variant_means(variants[v]))
            script << epoch << ' ' << accuracy << ' ' << loss << '\n';
        script << "EOD\n";
        const std::string runs = std::to_string(variants[v].runs.size());
        const std::string style = " with linespoints lw 3 pt 7 ps 0.6 lc rgb '#" + colour +
                                  "' title " +
                                  gnuplot_quoted(variants[v].label + " (mean of " + runs + ")");
        accuracy_plot << mean_block << " using 1:2" << style << ", ";
        loss_plot << mean_block << " using 1:3" << style << ", ";
    }
    auto plot_command = [](const std::ostringstream& plots) {
        std::string text = plots.str();
        return "plot " + text.substr(0, text.size() - 2) + "\n";  // drop the last ", "
    };
    // The target accuracy of each variant as a dashed line, labelled.
    std::ostringstream targets;
    std::vector<double> drawn;
    for (const Variant& variant : variants) {
        const double target = variant.runs.front()->target();
        if (std::find(drawn.begin(), drawn.end(), target) != drawn.end()) continue;
        drawn.push_back(target);
        targets << "set arrow from graph 0, first " << target << " to graph 1, first " << target
                << " nohead dt 2 lw 1.5 lc rgb '#666666'\n"
                << "set label 'target " << field_text(variant.runs.front()->config().at("target"))
                << "' at graph 0.02, first " << target << " offset 0,0.6 tc rgb '#666666'\n";
    }
    std::ostringstream panels;
    panels << "set termoption noenhanced\n"
           << "set multiplot layout 1,2 title " << gnuplot_quoted(title)
           << "\n"
           // The key goes below each panel, where no curve runs; "epoch" is in the titles
           // because an x label would collide with the key.
           << "set grid\nset xtics 1\nset key below\n"
           << "set title '" << capitalized(judged_name(variants)) << " after each epoch'\n"
           << "set ylabel '" << judged_name(variants).substr(judged_name(variants).find(' ') + 1)
           << "'\n"
           << targets.str() << plot_command(accuracy_plot) << "unset arrow\nunset label\n"
           << "set title 'Training loss per epoch (mean over its batches)'\nset ylabel 'loss'\n"
           << plot_command(loss_plot) << "unset multiplot\n";
    return {script.str(), panels.str()};
}

// Runs `gnuplot script` and throws with gnuplot's own message when it fails.
void run_gnuplot(const std::string& script_path) {
    const std::string errors_path = script_path + ".errors";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, errors_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    std::string program = "gnuplot";
    char* argv[] = {program.data(), const_cast<char*>(script_path.c_str()), nullptr};
    pid_t child = 0;
    const int spawn_error = posix_spawnp(&child, "gnuplot", &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawn_error != 0) {
        std::remove(errors_path.c_str());
        throw std::runtime_error(std::string("cannot run gnuplot (Debian package gnuplot-nox): ") +
                                 std::strerror(spawn_error));
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    std::string errors;
    try {
        errors = read_file(errors_path);
    } catch (const std::runtime_error&) {
    }
    std::remove(errors_path.c_str());
    // Anything but warnings (a cramped key, a one-epoch x range) is an error, even when gnuplot
    // exits with 0.
    std::string problems;
    std::istringstream lines(errors);
    for (std::string line; std::getline(lines, line);)
        if (line.find("warning:") == std::string::npos && line.rfind("Warning:", 0) != 0 &&
            !line.empty())
            problems += line + "\n";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !problems.empty())
        throw std::runtime_error("gnuplot failed on " + script_path + ": " + errors);
}

}  // namespace

std::vector<Variant> group_variants(const std::vector<RunLog>& logs) {
    std::vector<Variant> variants;
    if (logs.empty()) return variants;
    std::vector<nlohmann::ordered_json> keys;
    for (const RunLog& log : logs) {
        const nlohmann::ordered_json key = variant_key(log);
        std::size_t v = 0;
        while (v < keys.size() && keys[v] != key)
            ++v;
        if (v == keys.size()) {
            keys.push_back(key);
            variants.emplace_back();
        }
        variants[v].runs.push_back(&log);
    }
    // Label each variant by the fields that tell the variants apart.
    std::vector<std::string> differing;
    for (const nlohmann::ordered_json& first : keys)
        for (const auto& item : first.items()) {
            if (std::find(differing.begin(), differing.end(), item.key()) != differing.end())
                continue;
            for (const nlohmann::ordered_json& key : keys)
                if (!key.contains(item.key()) || key.at(item.key()) != item.value()) {
                    differing.push_back(item.key());
                    break;
                }
        }
    // One variant: labelled by its network (a residual network by its depth, as it has no
    // hidden layers) and its normalization.
    if (differing.empty()) {
        const bool resnet = keys.front().contains("depth");
        for (const std::string field : {"model", "depth", "hidden", "act", "bn", "norm"})
            if (keys.front().contains(field) && field != (resnet ? "hidden" : "model"))
                differing.push_back(field);
    }
    // Logs of different programs differ in which fields they have: label by the differing
    // fields every log has, where there are any.
    // (sync_bn only data-parallel runs have: one process's run is labelled without it.)
    std::vector<std::string> shared;
    for (const std::string& field : differing)
        if (field == "sync_bn" ||
            std::all_of(keys.begin(), keys.end(),
                        [&](const nlohmann::ordered_json& key) { return key.contains(field); }))
            shared.push_back(field);
    if (!shared.empty()) differing = shared;
    // "norm" names the normalization that "bn" only says is BatchNorm or not.
    if (std::find(differing.begin(), differing.end(), "norm") != differing.end())
        differing.erase(std::remove(differing.begin(), differing.end(), "bn"), differing.end());
    // Runs that name their variant (fit's config "variant") are labelled by that name, unless
    // two variants share it (the logs of several comparisons: "bn=on" of a plain network and of
    // a residual one); then by the differing fields, as other runs.
    std::set<std::string> names;
    bool names_unique = true;
    for (const nlohmann::ordered_json& key : keys)
        if (key.contains("variant") && key.at("variant").is_string())
            names_unique =
                names.insert(key.at("variant").get<std::string>()).second && names_unique;
    differing.erase(std::remove(differing.begin(), differing.end(), "variant"), differing.end());
    for (std::size_t v = 0; v < variants.size(); ++v) {
        if (names_unique && keys[v].contains("variant") && keys[v].at("variant").is_string()) {
            variants[v].label = keys[v].at("variant").get<std::string>();
            continue;
        }
        for (const std::string& field : differing)
            if (keys[v].contains(field) || field != "sync_bn")
                variants[v].label +=
                    (variants[v].label.empty() ? "" : " ") + field + "=" +
                    (keys[v].contains(field) ? field_text(keys[v].at(field)) : "?");
    }
    return variants;
}

std::vector<std::vector<std::string>> comparison_rows(const std::vector<Variant>& variants) {
    const std::string judged = judged_name(variants, true);
    std::vector<std::vector<std::string>> rows{{"variant", "runs", "target", "epochs to target",
                                                "reached", "best " + judged, "final " + judged,
                                                "s/epoch"}};
    for (const Variant& variant : variants) {
        std::vector<double> epochs, best, final, seconds;
        std::size_t diverged = 0;
        for (const RunLog* run : variant.runs) {
            const RunOutcome outcome = run->outcome();
            if (outcome.epochs_to_target) epochs.push_back(*outcome.epochs_to_target);
            if (outcome.divergence) ++diverged;
            if (run->epochs.empty()) continue;
            best.push_back(outcome.best_test_acc);
            final.push_back(outcome.final_test_acc);
            seconds.push_back(outcome.seconds_per_epoch);
        }
        const std::size_t runs = variant.runs.size();
        std::string reached = std::to_string(epochs.size()) + " of " + std::to_string(runs);
        if (diverged > 0) reached += " (" + std::to_string(diverged) + " diverged)";
        rows.push_back({variant.label, std::to_string(runs),
                        field_text(variant.runs.front()->config().at("target")),
                        epochs.empty() ? "never" : mean_sd(epochs, 1), reached, mean_sd(best, 4),
                        mean_sd(final, 4), mean_sd(seconds, 2)});
    }
    return rows;
}

namespace {

// The distinct values of the number `field` in the runs' configurations, rising; empty when a
// run has none.
std::vector<double> distinct_values(const std::vector<const RunLog*>& runs,
                                    const std::string& field) {
    std::vector<double> values;
    for (const RunLog* run : runs) {
        if (!run->config().contains(field) || !run->config().at(field).is_number()) return {};
        values.push_back(run->config().at(field).get<double>());
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

}  // namespace

std::vector<SweepSeries> sweep_series(const std::vector<Variant>& variants) {
    std::vector<const RunLog*> runs;
    for (const Variant& variant : variants)
        runs.insert(runs.end(), variant.runs.begin(), variant.runs.end());
    // A batch-size sweep may scale the learning rate with the batch: both leave the grouping.
    std::string field = "batch";
    std::vector<double> distinct = distinct_values(runs, field);
    if (distinct.size() < 2) {
        field = "lr";
        distinct = distinct_values(runs, field);
    }
    if (distinct.size() < 2) return {};
    // The runs again with the swept fields and the variant name left out of the configuration:
    // grouped, they fall into the series.
    std::vector<RunLog> without_swept;
    std::vector<double> values;
    for (const RunLog* run : runs) {
        values.push_back(run->config().at(field).get<double>());
        without_swept.push_back(*run);
        nlohmann::ordered_json& config = without_swept.back().header["config"];
        config.erase(field);
        if (field == "batch") config.erase("lr");
        config.erase("variant");
    }
    std::vector<SweepSeries> series;
    for (const Variant& grouped : group_variants(without_swept)) {
        SweepSeries one{field, grouped.label, {}};
        for (double value : distinct) {
            std::vector<const RunLog*> at_value;
            for (const RunLog* run : grouped.runs) {
                const std::size_t index = std::size_t(run - without_swept.data());
                if (values[index] == value) at_value.push_back(runs[index]);
            }
            if (!at_value.empty()) one.runs_by_value.emplace_back(value, at_value);
        }
        series.push_back(one);
    }
    return series;
}

std::vector<std::vector<std::string>> stability_rows(const std::vector<SweepSeries>& series) {
    std::string judged = "test acc";
    for (const SweepSeries& one : series)
        for (const auto& value_runs : one.runs_by_value)
            for (const RunLog* run : value_runs.second)
                if (!run->epochs.empty() && judged == "test acc")
                    judged = std::string(run->epochs.front().val_acc ? "val" : "test") +
                             (run->epochs.front().regression ? " R²" : " acc");
    std::vector<std::vector<std::string>> rows{
        {series.empty() ? "lr" : series.front().field, "variant", "runs", "best " + judged,
         "final " + judged, "epochs to target", "diverged", "stuck at chance"}};
    for (const SweepSeries& one : series)
        for (const auto& [value, runs] : one.runs_by_value) {
            std::vector<double> best, final, epochs;
            std::string diverged_epochs;
            std::size_t diverged = 0, stuck = 0;
            for (const RunLog* run : runs) {
                const RunOutcome outcome = run->outcome();
                if (outcome.epochs_to_target) epochs.push_back(*outcome.epochs_to_target);
                if (outcome.divergence) {
                    ++diverged;
                    diverged_epochs += (diverged_epochs.empty() ? "" : ", ") +
                                       std::to_string(outcome.divergence->epoch);
                }
                stuck += outcome.stuck;
                if (run->epochs.empty()) continue;
                best.push_back(outcome.best_test_acc);
                final.push_back(outcome.final_test_acc);
            }
            const std::string of = " of " + std::to_string(runs.size());
            rows.push_back({number_string(value), one.label, std::to_string(runs.size()),
                            best.empty() ? "-" : mean_sd(best, 4),
                            final.empty() ? "-" : mean_sd(final, 4),
                            epochs.empty() ? "never" : mean_sd(epochs, 1),
                            std::to_string(diverged) + of +
                                (diverged ? " (epoch" + std::string(diverged > 1 ? "s " : " ") +
                                                diverged_epochs + ")"
                                          : ""),
                            std::to_string(stuck) + of});
        }
    return rows;
}

std::string markdown_table(const std::vector<std::vector<std::string>>& rows) {
    // Widths in characters, counting "±" (two bytes in UTF-8) as one.
    auto width_of = [](const std::string& text) {
        std::size_t width = 0;
        for (unsigned char c : text)
            width += (c & 0xC0) != 0x80;
        return width;
    };
    std::vector<std::size_t> widths;
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], width_of(row[c]));
        }
    std::ostringstream table;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        table << "|";
        for (std::size_t c = 0; c < rows[r].size(); ++c)
            table << " " << rows[r][c] << std::string(widths[c] - width_of(rows[r][c]), ' ')
                  << " |";
        table << "\n";
        if (r == 0) {
            table << "|";
            for (std::size_t width : widths)
                table << std::string(width + 2, '-') << "|";
            table << "\n";
        }
    }
    return table.str();
}

std::string epoch_table(const std::vector<Variant>& variants) {
    std::ostringstream table;
    std::vector<const RunLog*> runs;
    std::vector<std::string> labels;
    for (const Variant& variant : variants)
        for (const RunLog* run : variant.runs) {
            runs.push_back(run);
            labels.push_back(variant.label);
        }
    int epochs = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        table << "[" << i + 1 << "] " << labels[i]
              << " seed=" << field_text(runs[i]->config().at("seed")) << "  " << runs[i]->path
              << "\n";
        if (!runs[i]->epochs.empty()) epochs = std::max(epochs, runs[i]->epochs.back().epoch);
    }
    // Each run's judged score by its log's name: test_acc, val_acc, test_r2 or val_r2.
    std::vector<std::string> headers;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const EpochStats* first = runs[i]->epochs.empty() ? nullptr : &runs[i]->epochs.front();
        const std::string score = std::string(first && first->val_acc ? "val" : "test") +
                                  (first && first->regression ? "_r2" : "_acc");
        headers.push_back(" | [" + std::to_string(i + 1) + "] " + score + " train_loss");
    }
    char cell[64];
    table << "\nepoch";
    for (const std::string& header : headers)
        table << header;
    table << "\n";
    for (int epoch = 1; epoch <= epochs; ++epoch) {
        std::snprintf(cell, sizeof cell, "%5d", epoch);
        table << cell;
        for (std::size_t i = 0; i < runs.size(); ++i) {
            const EpochStats* found = nullptr;
            for (const EpochStats& stats : runs[i]->epochs)
                if (stats.epoch == epoch) found = &stats;
            const std::size_t width = headers[i].size();
            if (found)
                std::snprintf(cell, sizeof cell, " | %*.4f %10.4f", int(width - 14),
                              judged_acc(*found), found->train_loss);
            else
                std::snprintf(cell, sizeof cell, " | %*s", int(width - 3), "-");
            table << cell;
        }
        table << "\n";
    }
    return table.str();
}

namespace {

// Draws `plots` into PREFIX.svg and PREFIX.png at width x height pixels, keeping the script as
// PREFIX.gp. Temporary files are renamed into place only when gnuplot succeeded.
void draw(const GnuplotScript& plots, const std::string& prefix, int width, int height) {
    const std::string svg = prefix + ".svg", png = prefix + ".png", script_path = prefix + ".gp";
    const std::string size = std::to_string(width) + "," + std::to_string(height);
    const std::string drawing = plots.data + "set terminal svg size " + size +
                                " dynamic font 'Helvetica,13' background rgb 'white'\nset output " +
                                gnuplot_quoted(svg + ".tmp") + "\n" + plots.panels +
                                "set terminal pngcairo size " + size +
                                " font 'Helvetica,11' background rgb 'white'\nset output " +
                                gnuplot_quoted(png + ".tmp") + "\n" + plots.panels + "set output\n";
    write_file_atomically(script_path + ".tmp", drawing);
    try {
        run_gnuplot(script_path + ".tmp");
    } catch (...) {
        for (const std::string& path : {svg, png, script_path})
            std::remove((path + ".tmp").c_str());
        throw;
    }
    // The kept script draws to the final names, so that running it again redraws them.
    std::string kept = drawing;
    for (const std::string& path : {svg, png}) {
        const std::string from = gnuplot_quoted(path + ".tmp");
        kept.replace(kept.find(from), from.size(), gnuplot_quoted(path));
    }
    write_file_atomically(script_path, kept);
    std::remove((script_path + ".tmp").c_str());
    for (const std::string& path : {svg, png})
        if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0)
            throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

// The probed run of each variant that the probe plots show: its first run with probe points.
std::vector<const RunLog*> probed_runs(const std::vector<Variant>& variants) {
    std::vector<const RunLog*> runs;
    for (const Variant& variant : variants) {
        const RunLog* probed = nullptr;
        for (const RunLog* run : variant.runs)
            if (!probed && !run->probes.empty()) probed = run;
        runs.push_back(probed);
    }
    return runs;
}

}  // namespace

void write_curves(const std::vector<Variant>& variants, const std::string& prefix,
                  const std::string& title) {
    if (variants.empty()) throw std::invalid_argument("write_curves: no runs to plot");
    draw(gnuplot_script(variants, title), prefix, 1200, 480);
}

void write_sweep_plot(const std::vector<SweepSeries>& series, const std::string& prefix,
                      const std::string& title) {
    if (series.empty()) throw std::invalid_argument("write_sweep_plot: nothing swept");
    // Error against batch size, as Wu & He's Figure 1; accuracy against learning rate.
    const bool error = series.front().field == "batch";
    std::ostringstream data, plots;
    data.precision(9);
    data << "# Drawn by bnlab's compare_variants; run `gnuplot THIS_FILE` to draw it again.\n";
    for (std::size_t s = 0; s < series.size(); ++s) {
        const std::string colour = kColours[s % std::size(kColours)];
        const std::string id = std::to_string(s);
        std::ostringstream means, points, crosses;
        means.precision(9);
        points.precision(9);
        crosses.precision(9);
        for (const auto& [value, runs] : series[s].runs_by_value) {
            double sum = 0.0;
            std::size_t counted = 0;
            for (const RunLog* run : runs) {
                const RunOutcome outcome = run->outcome();
                if (outcome.divergence) {
                    crosses << value << (error ? " 1\n" : " 0\n");
                    continue;
                }
                const double y = error ? 1.0 - outcome.final_test_acc : outcome.final_test_acc;
                points << value << ' ' << y << '\n';
                sum += y;
                ++counted;
            }
            if (counted > 0) means << value << ' ' << sum / double(counted) << '\n';
        }
        data << "$mean_" << id << " << EOD\n"
             << means.str() << "EOD\n$runs_" << id << " << EOD\n"
             << points.str() << "EOD\n";
        plots << "$mean_" << id << " using 1:2 with linespoints lw 3 pt 7 ps 0.6 lc rgb '#"
              << colour << "' title " << gnuplot_quoted(series[s].label + " (mean)") << ", $runs_"
              << id << " using 1:2 with points pt 6 ps 1 lc rgb '#" << colour << "' title "
              << gnuplot_quoted(series[s].label + " (each seed)") << ", ";
        if (!crosses.str().empty()) {
            data << "$diverged_" << id << " << EOD\n" << crosses.str() << "EOD\n";
            plots << "$diverged_" << id << " using 1:2 with points pt 2 ps 2 lw 2 lc rgb '#"
                  << colour << "' title "
                  << gnuplot_quoted(series[s].label + " (diverged, drawn at " +
                                    (error ? "1" : "0") + ")")
                  << ", ";
        }
    }
    const std::string plot_list = plots.str();
    std::ostringstream panels;
    panels << "set termoption noenhanced\nset title " << gnuplot_quoted(title) << "\n"
           << "set grid\nset logscale x" << (error ? " 2" : "")
           << "\nset key below\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.02\n"
           << (error ? "set xlabel 'batch size'\nset ylabel 'final test error'\n"
                     : "set xlabel 'learning rate'\nset ylabel 'final test accuracy'\n"
                       "set yrange [0:1]\n")
           << "plot " << plot_list.substr(0, plot_list.size() - 2) << "\n";
    draw({data.str(), panels.str()}, prefix, 900, 560);
}

bool has_probes(const std::vector<Variant>& variants) {
    for (const RunLog* run : probed_runs(variants))
        if (run) return true;
    return false;
}

void write_probe_plots(const std::vector<Variant>& variants, const std::string& prefix,
                       const std::string& title) {
    const std::vector<const RunLog*> runs = probed_runs(variants);
    int layers = 0;
    for (const RunLog* run : runs)
        if (run)
            for (const ProbePoint& point : run->probes)
                layers = std::max(layers, point.layer);
    if (layers == 0) throw std::invalid_argument("write_probe_plots: no run has probe points");

    std::ostringstream data;
    data.precision(9);
    data << "# Drawn by bnlab's curves; run `gnuplot THIS_FILE` to draw it again.\n";
    for (std::size_t v = 0; v < runs.size(); ++v) {
        if (!runs[v]) continue;
        for (int layer = 1; layer <= layers; ++layer) {
            data << "$probe_" << v << "_" << layer << " << EOD\n# " << runs[v]->path
                 << "\n# step p15 p50 p85 grad_norm\n";
            for (const ProbePoint& point : runs[v]->probes)
                if (point.layer == layer)
                    data << point.step << ' ' << point.p15 << ' ' << point.p50 << ' ' << point.p85
                         << ' ' << point.grad_norm << '\n';
            data << "EOD\n";
        }
    }
    // Percentile bands: a row per hidden layer, a column per variant, like Figure 1(b,c).
    std::ostringstream bands;
    bands << "set termoption noenhanced\nset multiplot layout " << layers << "," << runs.size()
          << " title "
          << gnuplot_lines({title,
                            "input to each hidden layer's activation function: 15th, "
                            "50th (line) and 85th percentiles over 500 test images"})
          << "\nset grid\nset key off\nset xlabel 'step'\n";
    for (int layer = 1; layer <= layers; ++layer) {
        // One vertical range per row, so that the variants compare at a glance.
        double low = HUGE_VAL, high = -HUGE_VAL;
        for (const RunLog* run : runs)
            if (run)
                for (const ProbePoint& point : run->probes)
                    if (point.layer == layer) {
                        low = std::min(low, point.p15);
                        high = std::max(high, point.p85);
                    }
        const double margin = 0.05 * (high - low) + 1e-6;
        bands << "set yrange [" << low - margin << ":" << high + margin << "]\n";
        for (std::size_t v = 0; v < runs.size(); ++v) {
            const std::string colour = kColours[v % std::size(kColours)];
            bands << "set title "
                  << gnuplot_quoted(variants[v].label + ", hidden layer " + std::to_string(layer))
                  << "\n";
            if (!runs[v]) {
                bands << "set label 1 'not probed' at graph 0.5, graph 0.5 center\n"
                      << "plot [0:1] [0:1] NaN notitle\nunset label 1\n";
                continue;
            }
            const std::string block = "$probe_" + std::to_string(v) + "_" + std::to_string(layer);
            bands << "plot " << block << " using 1:2:4 with filledcurves lc rgb '#60" << colour
                  << "' notitle, " << block << " using 1:3 with lines lw 2.5 lc rgb '#" << colour
                  << "' notitle\n";
        }
    }
    bands << "unset multiplot\n";
    draw({data.str(), bands.str()}, prefix + "-probe", 560 * int(runs.size()), 200 * layers + 110);

    // Gradient norms: a panel per variant, a line per layer, on a log scale.
    std::ostringstream norms;
    norms << "set termoption noenhanced\nset multiplot layout 1," << runs.size() << " title "
          << gnuplot_lines({title, "L2 norm of each hidden layer's weight gradient, by step"})
          << "\nset grid\nset logscale y\nset format y '%.0e'\nset key below\n";
    // One vertical range for all panels, so that the variants compare at a glance.
    double smallest = HUGE_VAL, largest = 0.0;
    for (const RunLog* run : runs)
        if (run)
            for (const ProbePoint& point : run->probes)
                if (point.grad_norm > 0.0) {
                    smallest = std::min(smallest, point.grad_norm);
                    largest = std::max(largest, point.grad_norm);
                }
    if (largest > 0.0) norms << "set yrange [" << smallest / 1.5 << ":" << largest * 1.5 << "]\n";
    for (std::size_t v = 0; v < runs.size(); ++v) {
        norms << "set title " << gnuplot_quoted(variants[v].label) << "\n";
        if (!runs[v]) {
            norms << "plot [0:1] [1:2] NaN title 'not probed'\n";
            continue;
        }
        norms << "plot ";
        for (int layer = 1; layer <= layers; ++layer)
            norms << (layer > 1 ? ", " : "") << "$probe_" << v << "_" << layer
                  << " using 1:5 with lines lw 2 lc rgb '#"
                  << kColours[std::size_t(layer - 1) % std::size(kColours)] << "' title 'layer "
                  << layer << "'";
        norms << "\n";
    }
    norms << "unset multiplot\n";
    draw({data.str(), norms.str()}, prefix + "-gradients", 560 * int(runs.size()), 440);
}

namespace {

// Rows as an HTML table, the first row as headers.
std::string html_table(const std::vector<std::vector<std::string>>& rows) {
    std::string html = "<table>\n";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        html += "<tr>";
        for (const std::string& cell : rows[r])
            html += (r == 0 ? "<th>" : "<td>") + html_escape(cell) + (r == 0 ? "</th>" : "</td>");
        html += "</tr>\n";
    }
    return html + "</table>\n";
}

// The stability table of a sweep, or nothing.
std::string stability_html(const std::vector<Variant>& variants) {
    const std::vector<SweepSeries> series = sweep_series(variants);
    if (series.empty()) return "";
    return std::string(series.front().field == "batch"
                           ? "<h2>Over batch sizes</h2>\n"
                           : "<h2>Stability over learning rates</h2>\n") +
           html_table(stability_rows(series)) +
           "<p>Diverged: the loss stopped being a finite number (the epoch it happened in). Stuck "
           "at chance: no epoch's test accuracy reached 1.5 times chance.</p>\n";
}

}  // namespace

void write_report_html(const std::string& path, const std::string& title,
                       const std::vector<Variant>& variants,
                       const std::vector<std::string>& svg_paths) {
    std::string svgs;
    for (const std::string& svg_path : svg_paths) {
        const std::string svg = read_file(svg_path);
        const std::size_t svg_start = svg.find("<svg");
        if (svg_start == std::string::npos)
            throw std::runtime_error(svg_path + ": not an SVG file");
        svgs += svg.substr(svg_start) + "\n";  // an XML prolog or doctype may not stand in HTML
    }

    std::ostringstream html;
    html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
         << html_escape(title) << "</title>\n<style>\n"
         << "body{font-family:sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;}\n"
         << "table{border-collapse:collapse;}td,th{border:1px solid #bbb;padding:4px 10px;"
            "text-align:right;}\nth{background:#eee;}td:first-child{text-align:left;}\n"
         << "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px;}\n"
         << "</style>\n</head>\n<body>\n<h1>" << html_escape(title) << "</h1>\n";
    html << "<h2>Results</h2>\n"
         << html_table(comparison_rows(variants))
         << "<p>Epochs to target: the first epoch whose test accuracy reached the "
            "target, mean ± standard deviation over the runs that reached it. Seconds per "
            "epoch count training only, not evaluation.</p>\n"
         << stability_html(variants) << "<h2>Curves</h2>\n"
         << svgs << "<h2>Per epoch</h2>\n<pre>" << html_escape(epoch_table(variants)) << "</pre>\n";
    for (const Variant& variant : variants) {
        const nlohmann::ordered_json& header = variant.runs.front()->header;
        html << "<h2>Variant " << html_escape(variant.label)
             << "</h2>\n<h3>Configuration</h3>\n<pre>" << html_escape(header.at("config").dump(2))
             << "</pre>\n";
        if (header.contains("model") && header["model"].contains("summary"))
            html << "<h3>Model</h3>\n<pre>"
                 << html_escape(header["model"]["summary"].get<std::string>()) << "</pre>\n";
        nlohmann::ordered_json environment;
        for (const char* field : {"versions", "threads", "host", "started", "command"})
            if (header.contains(field)) environment[field] = header[field];
        html << "<h3>Environment</h3>\n<pre>" << html_escape(environment.dump(2)) << "</pre>\n";
    }
    html << "</body>\n</html>\n";
    write_file_atomically(path, html.str());
}

}  // namespace bnlab
