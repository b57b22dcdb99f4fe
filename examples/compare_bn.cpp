// The main job: the same network trained with and without BatchNorm on Fashion-MNIST for several
// seeds, then a table of how many epochs each needed to reach the target test accuracy, the
// curves, and a report, all under runs/<preset>-<time>/ (or --out). One use of
// compare_variants (framework/experiment/compare.hpp).
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/blas_kernels.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/experiment/run_record.hpp"

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    using namespace bnlab;
    CLI::App app{
        "Trains the same network on Fashion-MNIST with and without BatchNorm (or with each "
        "normalization --norm lists) for several seeds and compares how many epochs each "
        "needs to reach the target test accuracy. Takes train's flags (except --bn and --log).",
        "compare_bn"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app, /*lists=*/true);
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
        const PreparedData data = load_data(base);
        const std::string command = command_line(argc, argv);

        // One variant per learning rate and normalization: BatchNorm on and off unless --norm
        // lists others. One rate keeps the names short.
        const std::vector<double> rates = flags.learning_rates();
        const bool on_off = app.get_option("--norm")->count() == 0;
        const std::vector<NormChoice> norms =
            on_off ? std::vector<NormChoice>{NormChoice(true), NormChoice(false)} : flags.norms();
        std::vector<VariantSpec> variants;
        for (double lr : rates)
            for (const NormChoice& norm : norms) {
                TrainConfig config = base;
                config.lr = lr;
                config.norm = norm;
                if (config.model == "mlp") check_norm_without_images(norm, config.model);
                const std::string bn = norm.kind() == NormKind::batch ? "on" : "off";
                nlohmann::ordered_json fields = {{"bn", bn}};
                if (!on_off) fields["norm"] = norm.text();
                variants.push_back({(on_off ? "bn=" + bn : "norm=" + norm.text()) +
                                        (rates.size() > 1 ? " lr=" + number_string(lr) : ""),
                                    [config, &data](Rng& rng) {
                                        return build_model(config, data.sets.train, data.sets.test,
                                                           rng);
                                    },
                                    fields});
            }
        std::string rates_text;
        for (double lr : rates)
            rates_text += (rates_text.empty() ? "" : ",") + number_string(lr);
        spdlog::info("{} x {} runs of {} (batch {}, {} lr {}, {} epochs, target {}) into {}", seeds,
                     variants.size(), network_string(base), base.batch, base.optimizer, rates_text,
                     base.epochs, number_string(base.target), out_dir);
        const RunContext context{
            "", {{"command", command}, {"data", data.description}}, isatty(STDOUT_FILENO) != 0};
        std::string norms_text;
        for (const NormChoice& norm : norms)
            norms_text += (norms_text.empty() ? "" : ", ") + norm.text();
        const std::string title =
            (on_off ? "BatchNorm on and off" : "Normalizations " + norms_text) +
            ", Fashion-MNIST, preset " + base.preset + ": " + network_string(base) + ", batch " +
            std::to_string(base.batch) + ", " + base.optimizer + " lr " + rates_text + ", " +
            std::to_string(seeds) + (seeds == 1 ? " seed" : " seeds");
        compare_variants(variants, data.sets.train, data.sets.test,
                         ComparisonOptions()
                             .seeds(seeds)
                             .first_seed(base.seed)
                             .out(out_dir)
                             .title(title)
                             .command(command)
                             .fit(fit_options(base, context)));
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    return 0;
}
