// The main job: the same network trained with and without BatchNorm on Fashion-MNIST for several
// seeds, then a table of how many epochs each needed to reach the target test accuracy, the
// curves, and a report, all under runs/<preset>-<time>/ (or --out).
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/experiment/mlp_run.hpp"
#include "framework/experiment/report.hpp"
#include "framework/experiment/run_record.hpp"

int main(int argc, char** argv) {
    using namespace bnlab;
    namespace fs = std::filesystem;
    CLI::App app{
        "Trains the same MLP on Fashion-MNIST with and without BatchNorm for several "
        "seeds and compares how many epochs each needs to reach the target test "
        "accuracy. Takes train's flags (except --bn and --log).",
        "compare_bn"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app);
    int seeds = 3;
    std::string out_dir;
    app.add_option("--seeds", seeds, "Runs per variant, with seeds --seed, --seed + 1, …")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--out", out_dir,
                   "Folder for the logs, curves and report [default: runs/<preset>-<time>]");
    CLI11_PARSE(app, argc, argv);
    if (app.get_option("--bn")->count() > 0) {
        spdlog::error("--bn: compare_bn runs both with and without BatchNorm; leave --bn out");
        return 2;
    }

    try {
        const TrainConfig base = flags.resolve();
        if (out_dir.empty())
            out_dir = "runs/" + base.preset + "-" + time_now("%Y%m%d-%H%M%S", false);
        PreparedData data = load_data(base);
        fs::create_directories(out_dir);
        const std::string command = command_line(argc, argv);
        spdlog::info("{} x 2 runs of {} {} (batch {}, {} lr {}, {} epochs, target {}) into {}",
                     seeds, hidden_string(base.hidden), to_string(base.activation), base.batch,
                     base.optimizer, number_string(base.lr), base.epochs,
                     number_string(base.target), out_dir);

        std::vector<std::string> log_paths;
        for (int s = 0; s < seeds; ++s)
            for (bool batchnorm : {true, false}) {
                TrainConfig config = base;
                config.seed = base.seed + std::uint64_t(s);
                config.batchnorm = batchnorm;
                const std::string name = std::string("bn-") + (batchnorm ? "on" : "off") + "-seed" +
                                         std::to_string(config.seed);
                config.log_path = (fs::path(out_dir) / (name + ".jsonl")).string();
                RunContext context{"bn=" + std::string(batchnorm ? "on " : "off") +
                                       " seed=" + std::to_string(config.seed),
                                   {{"command", command}, {"data", data.description}},
                                   isatty(STDOUT_FILENO) != 0};
                train_mlp(config, data.sets.train, data.sets.test, context);
                log_paths.push_back(config.log_path);
            }

        std::vector<RunLog> logs;
        for (const std::string& path : log_paths)
            logs.push_back(read_run_log(path));
        const std::vector<Variant> variants = group_variants(logs);
        const std::string table = markdown_table(comparison_rows(variants));
        const std::string title =
            "BatchNorm on and off, Fashion-MNIST, preset " + base.preset + ": " +
            hidden_string(base.hidden) + " " + to_string(base.activation) + ", batch " +
            std::to_string(base.batch) + ", " + base.optimizer + " lr " + number_string(base.lr) +
            ", " + std::to_string(seeds) + (seeds == 1 ? " seed" : " seeds");
        const std::string prefix = (fs::path(out_dir) / "curves").string();
        write_curves(variants, prefix, title);
        std::vector<std::string> plots{prefix + ".svg"};
        if (has_probes(variants)) {
            write_probe_plots(variants, prefix, title);
            plots.push_back(prefix + "-probe.svg");
            plots.push_back(prefix + "-gradients.svg");
        }
        write_report_html((fs::path(out_dir) / "report.html").string(), title, variants, plots);
        write_file_atomically((fs::path(out_dir) / "table.md").string(),
                              "# " + title + "\n\n`" + command + "`\n\n" + table);
        std::printf("\n%s\n%s\n", title.c_str(), table.c_str());
        spdlog::info("logs, curves.svg, curves.png, table.md and report.html are in {}", out_dir);
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
