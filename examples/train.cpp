// One training run of an MLP on Fashion-MNIST, logged to the console and optionally to JSONL,
// optionally saved to a checkpoint it can resume from:
//   build/bin/train --preset paper --bn off --seed 2 --log runs/paper-nobn-2.jsonl
//   build/bin/train --epochs 20 --save run.ckpt …     then, after a crash:
//   build/bin/train --resume run.ckpt --save run.ckpt
// Data-parallel over MPI, each process on its share of every batch of 512:
//   mpirun -np 2 build/bin/train --distributed --sync-bn on --batch 512 …
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/blas_kernels.hpp"
#include "framework/data_parallel.hpp"
#include "framework/experiment/model_run.hpp"
#include "framework/experiment/run_record.hpp"
#ifdef BNLAB_HAVE_MPI
#include "framework/mpi_communicator.hpp"
#endif

namespace {

// Under mpirun every process gets the same command line, so only the first reports its errors.
int rank_launched() {
#ifdef BNLAB_HAVE_MPI
    return bnlab::rank_from_environment();
#else
    return 0;
#endif
}

// Runs `run` with `communicator` (nullptr: one process). Returns the exit code.
using Run = std::function<int(bnlab::Communicator*)>;

// One process.
int run_alone(const Run& run) {
    try {
        return run(nullptr);
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
}

// Every process mpirun started. An error all processes agreed on (CollectiveError) ends them
// normally, rank 0 printing it; any other error on one process aborts them all, since the others
// may be waiting for it in a collective.
// `setup_error`: this process's error before MPI started ("" for none), e.g. a --data folder
// it cannot see: every process ends with the first one's.
int run_distributed(int& argc, char**& argv, const Run& run, const std::string& setup_error) {
#ifdef BNLAB_HAVE_MPI
    using namespace bnlab;
    if (!started_by_mpirun()) {
        spdlog::error(
            "--distributed: start the processes with mpirun, e.g. mpirun -np 2 {} --distributed "
            "…; this one was started alone",
            argv[0]);
        return 1;
    }
    std::unique_ptr<MpiSession> mpi;
    std::unique_ptr<MpiCommunicator> world_pointer;
    try {
        mpi = std::make_unique<MpiSession>(argc, argv);
        world_pointer = std::make_unique<MpiCommunicator>();
    } catch (const std::exception& error) {
        spdlog::error("{}", error.what());
        return 1;
    }
    MpiCommunicator& world = *world_pointer;
    try {
        throw_first_error(world, setup_error);
        return run(&world);
    } catch (const CollectiveError& error) {
        if (world.rank() == 0) spdlog::error("{}", error.what());
        return 1;
    } catch (const std::exception& error) {
        spdlog::error("rank {}: {}", world.rank(), error.what());
        world.abort(1);
    }
#else
    (void)argc;
    (void)run;
    (void)setup_error;
    spdlog::error("--distributed: {} was built without MPI (install libopenmpi-dev and rebuild)",
                  argv[0]);
    return 1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    using namespace bnlab;
    CLI::App app{
        "Trains an MLP classifier on Fashion-MNIST with SGD or Adam, with or without "
        "BatchNorm, and reports test accuracy after every epoch.",
        "train"};
    app.get_formatter()->column_width(28);
    TrainFlags flags(app);
    std::string log_path, save_path, resume_path, export_folded_path;
    int save_every = 1;
    app.add_option("--log", log_path,
                   "Write a JSONL log here: the configuration, one line per epoch, a final line");
    app.add_option("--save", save_path,
                   "Write a checkpoint here (atomically) after every --save-every epochs and "
                   "after the last");
    app.add_option("--save-every", save_every, "Epochs between checkpoints")
        ->transform(integer_at_least(1))
        ->capture_default_str();
    app.add_option("--export-folded", export_folded_path,
                   "After training, write the model with every BatchNorm folded into the Dense "
                   "before it, for inference (load it with load_model)");
    app.add_option("--resume", resume_path,
                   "Continue the run saved in this checkpoint, with its configuration; only "
                   "--epochs, --threads, --data, --log, --save, --save-every and --export-folded "
                   "may be given")
        ->check(CLI::ExistingFile);
    bool distributed = false;
    std::string sync_bn;
    app.add_flag("--distributed", distributed,
                 "Data-parallel training over the processes mpirun starts (mpirun -np N "
                 "build/bin/train --distributed …): --batch is the global batch, each process "
                 "trains on its share; rank 0 prints, logs and saves. Give it again to resume.");
    app.add_option("--sync-bn", sync_bn,
                   "With --distributed: BatchNorm statistics over the global batch (on, "
                   "PyTorch's SyncBatchNorm) or each process's share (off, PyTorch's DDP "
                   "default) [default: off]")
        ->check(CLI::IsMember({"on", "off"}));
    // Before MPI starts: under mpirun a flag that fails on one process alone (a --data folder
    // it cannot see) must reach the others, so a distributed run's parse error waits for MPI.
    std::string setup_error;
    try {
        app.parse(argc, argv);
        if (!sync_bn.empty() && !distributed)
            throw CLI::ValidationError("--sync-bn", "only with --distributed");
        if (!sync_bn.empty() && !resume_path.empty())
            throw CLI::ValidationError("--sync-bn",
                                       "--resume continues the saved run's configuration; "
                                       "leave --sync-bn out");
    } catch (const CLI::ParseError& error) {
        const bool wants_distributed = std::any_of(argv + 1, argv + argc, [](const char* arg) {
            return std::string(arg) == "--distributed";
        });
        if (error.get_exit_code() == 0 || !wants_distributed)  // --help, or one process
            return rank_launched() == 0 ? app.exit(error) : error.get_exit_code();
        distributed = true;
        setup_error = error.what();
    }

    const Run run = [&](Communicator* communicator) {
        TrainConfig config;
        PreparedData data;
        on_every_process(communicator, [&] {
            config = flags.resolve();
            if (!resume_path.empty()) {
                // The saved run's configuration, with the few flags that may change applied.
                const std::vector<std::string> given_flags = flags.given();
                for (const std::string& flag : given_flags)
                    if (flag != "--epochs" && flag != "--threads" && flag != "--data")
                        throw std::invalid_argument(flag +
                                                    ": --resume continues the saved run's "
                                                    "configuration; leave " +
                                                    flag + " out");
                const TrainConfig given = config;
                config = saved_config(resume_path);
                for (const std::string& flag : given_flags) {
                    if (flag == "--epochs") config.epochs = given.epochs;
                    if (flag == "--threads") config.threads = given.threads;
                    if (flag == "--data") config.data_dir = given.data_dir;
                }
                config.resume_path = resume_path;
                if (config.distributed && !communicator)
                    throw std::invalid_argument(resume_path +
                                                " is a data-parallel run's checkpoint: resume it "
                                                "with mpirun and --distributed");
            } else {
                config.distributed = communicator != nullptr;
                config.sync_bn = sync_bn == "on";
            }
            config.log_path = log_path;
            config.save_path = save_path;
            config.save_every = save_every;
            config.export_folded_path = export_folded_path;
            data = load_data(config);
        });
        RunContext context{"",
                           {{"command", command_line(argc, argv)}, {"data", data.description}},
                           // mpirun gives its processes a pseudo-terminal even when its own
                           // output goes to a file: no bar there.
                           isatty(STDOUT_FILENO) != 0 && !communicator,
                           communicator};
        const RunResult result = train_model(config, data.sets.train, data.sets.test, context);
        return result.outcome.divergence ? 3 : 0;  // the message is already out
    };
    return distributed ? run_distributed(argc, argv, run, setup_error) : run_alone(run);
}
