// The small-batch experiment (Wu & He 2018, Figure 1, on Fashion-MNIST): the same network with
// each normalization at batch sizes from 2 to 128, the learning rate scaled linearly with the
// batch from the preset's (lr * batch / preset batch), for several seeds; then the table and a
// plot of final test error against batch size, one line per normalization, under --out. One use
// of compare_variants (framework/experiment/compare.hpp):
//   build/bin/small_batch --preset cnn --batches 2,4,8,16,32,128 --seeds 2 --out runs/small
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
        "Trains the same network on Fashion-MNIST with each normalization at several batch "
        "sizes, the learning rate scaled linearly with the batch (--lr at --batch), and plots "
        "final test error against batch size. Takes train's flags (except --bn and --log).",
        "small_batch"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app, /*lists=*/true);
    std::vector<std::size_t> batches{2, 4, 8, 16, 32, 64, 128};
    int seeds = 2;
    std::string out_dir;
    app.add_option("--batches", batches, "Batch sizes, comma-separated")
        ->delimiter(',')
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--seeds", seeds, "Runs per variant, with seeds --seed, --seed + 1, …")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--out", out_dir,
                   "Folder for the logs, plots, table and report [default: "
                   "runs/small-batch-<preset>-<time>]");
    // The preset's network and its batch of 128 with lr 0.1, the reference of the scaling.
    app.get_option("--preset")->default_val("cnn");
    CLI11_PARSE(app, argc, argv);
    try {
        if (app.get_option("--bn")->count() > 0)
            throw std::invalid_argument("--bn: small_batch runs every --norm; leave --bn out");
        if (flags.learning_rates().size() > 1)
            throw std::invalid_argument(
                "--lr: small_batch scales one learning rate with the batch; give one");
        const TrainConfig base = flags.resolve();
        const std::vector<NormChoice> norms =
            app.get_option("--norm")->count() > 0
                ? flags.norms()
                : std::vector<NormChoice>{
                      NormChoice(NormKind::batch),    NormChoice(NormKind::renorm),
                      NormChoice(NormKind::group, 4), NormChoice(NormKind::layer),
                      NormChoice(NormKind::instance), NormChoice(NormKind::none)};
        if (out_dir.empty())
            out_dir = "runs/small-batch-" + base.preset + "-" + time_now("%Y%m%d-%H%M%S", false);
        const PreparedData data = load_data(base);
        const std::string command = command_line(argc, argv);

        std::vector<VariantSpec> variants;
        std::string norms_text, batches_text;
        for (const NormChoice& norm : norms) {
            if (base.model == "mlp") check_norm_without_images(norm, base.model);
            norms_text += (norms_text.empty() ? "" : ", ") + norm.text();
        }
        for (const std::size_t batch : batches) {
            batches_text += (batches_text.empty() ? "" : ",") + std::to_string(batch);
            for (const NormChoice& norm : norms) {
                TrainConfig config = base;
                config.norm = norm;
                config.batch = batch;
                // Linear scaling (Goyal et al. 2017), as the GroupNorm paper's batch sweep.
                config.lr = base.lr * double(batch) / double(base.batch);
                VariantSpec variant{"norm=" + norm.text() + " batch=" + std::to_string(batch),
                                    [config, &data](Rng& rng) {
                                        return build_model(config, data.sets.train, data.sets.test,
                                                           rng);
                                    },
                                    {{"bn", norm.kind() == NormKind::batch ? "on" : "off"},
                                     {"norm", norm.text()},
                                     {"lr", config.lr}}};
                variant.batch_size = batch;
                variants.push_back(std::move(variant));
            }
        }
        spdlog::info("{} x {} runs of {} ({}; batches {}, lr {} at batch {}, {} epochs) into {}",
                     seeds, variants.size(), network_string(base), norms_text, batches_text,
                     number_string(base.lr), base.batch, base.epochs, out_dir);
        const RunContext context{
            "", {{"command", command}, {"data", data.description}}, isatty(STDOUT_FILENO) != 0};
        const std::string title =
            "Normalizations against batch size, Fashion-MNIST, preset " + base.preset + ": " +
            network_string(base) + ", " + base.optimizer + " lr " + number_string(base.lr) +
            " x batch/" + std::to_string(base.batch) + ", " + std::to_string(base.epochs) +
            " epochs, " + std::to_string(seeds) + (seeds == 1 ? " seed" : " seeds");
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
