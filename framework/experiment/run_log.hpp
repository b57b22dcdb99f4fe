#pragma once
// The JSONL log of a training run, one JSON object per line:
//   {"type":"config", "config":{every flag}, "model":{…}, "versions":{…}, "threads":{…}, …}
//   {"type":"epoch", "epoch":1, "step":1000, "train_loss":…, "train_acc":…, "test_loss":…,
//    "test_acc":…, "lr":…, "seconds":…, "samples_per_s":…, "eval_seconds":…}   (one per epoch;
//    with a validation set "val_loss" and "val_acc" instead of the test fields, and one
//    {"type":"test", "epoch":…, "test_loss":…, "test_acc":…} line at the end; for a regression
//    "train_r2", "train_rmse", "test_r2", "test_rmse" in place of the accuracies)
//   {"type":"final", "status":"completed"|"diverged", "epochs_to_target":4|null,
//    "best_test_acc":…, "best_epoch":…, "final_test_acc":…, "diverged_at":null|{…},
//    "stuck":false, "chance":0.1, …}
// and, for probed runs, probe lines between them (see ProbePoint).
// train_loss and train_acc are means over the epoch's training batches, in training mode, as
// the weights changed; test_* are measured in eval mode after the epoch. `seconds` is the
// epoch's training time alone; samples_per_s is the training samples over it.

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bnlab {

struct EpochStats {
    int epoch = 0;
    long step = 0;  // optimizer steps since the start of training, at the end of this epoch
    double train_loss = 0.0;
    double train_acc = 0.0;
    double test_loss = 0.0;  // NaN when the epoch is judged on a validation set instead
    double test_acc = 0.0;
    // With a validation set (FitOptions::validation_fraction): the held-out rows, in eval mode.
    std::optional<double> val_loss;
    std::optional<double> val_acc;
    // A regression (MeanSquaredError): the *_acc fields hold R² = 1 - MSE / Var(targets), and
    // the log names them train_r2, test_r2, val_r2 and adds the RMSE (train_rmse, …).
    bool regression = false;
    double lr = 0.0;
    double seconds = 0.0;
    double samples_per_s = 0.0;
    double eval_seconds = 0.0;
};

// One hidden layer at one point of training, from the probe (train --probe): percentiles of
// the input to its activation function over a fixed test batch in eval mode, and the L2 norm of
// the gradient of the Dense weights before it.
struct ProbePoint {
    int epoch = 0;
    long step = 0;  // optimizer steps since the start of training
    int layer = 0;  // hidden layer, from 1
    double p15 = 0.0;
    double p50 = 0.0;
    double p85 = 0.0;
    double grad_norm = 0.0;
};

// Where a run stopped because its loss stopped being a finite number.
struct Divergence {
    int epoch = 0;  // the epoch in progress
    long step = 0;  // the step whose loss was not finite, counted from the start of training
};

// Why a run ended before its last epoch at a callback's request (callback.hpp).
struct StopRequest {
    std::string callback;  // the name() of the callback that asked
    std::string reason;
};

// The test set measured once at the end of a run judged on a validation set.
struct FinalTest {
    int epoch = 0;  // the epoch whose weights were measured (the best one's when restored)
    double loss = 0.0;
    double acc = 0.0;
};

// How a run went, from its epochs: what the final line records. With a validation set the
// epochs are judged on it: best_test_acc, final_test_acc and epochs_to_target then hold the
// validation accuracy (the final line names them best_val_acc, …) and `test` the one test.
struct RunOutcome {
    std::optional<int> epochs_to_target;  // first epoch with test_acc >= target
    double best_test_acc = 0.0;
    int best_epoch = 0;
    double final_test_acc = 0.0;
    bool judged_on_validation = false;
    bool regression = false;  // the accuracies are R²s
    std::optional<FinalTest> test;
    std::optional<StopRequest> stopped;  // a callback ended the run
    std::optional<std::string> error;    // a callback (or the log) threw this
    double seconds_per_epoch = 0.0;      // mean training time of an epoch
    std::optional<Divergence> divergence;
    double chance = 0.0;  // the accuracy of guessing, 1 / classes; 0 when not known
    // Stuck at chance: the run did not diverge, yet no epoch's test accuracy reached 1.5 times
    // chance (the deep sigmoid network without BatchNorm stays at 0.1000 on 10 classes).
    bool stuck = false;
};

// The accuracy an epoch is judged by: on the validation set when it has one, else the test set.
inline double judged_acc(const EpochStats& epoch) {
    return epoch.val_acc ? *epoch.val_acc : epoch.test_acc;
}

RunOutcome outcome_of(const std::vector<EpochStats>& epochs, double target,
                      std::optional<Divergence> divergence, double chance = 0.0);

nlohmann::ordered_json to_json(const EpochStats& epoch);
// Adds a set's loss and score to a line: "test_loss" and "test_acc", or for a regression
// "test_loss", "test_r2" and "test_rmse" (the square root of the loss, a mean squared error).
void add_scores(nlohmann::ordered_json& line, const std::string& set, double loss, double score,
                bool regression);
// {"type":"probe","epoch":…,"step":…,"layer":…,"p15":…,"p50":…,"p85":…,"grad_norm":…}
nlohmann::ordered_json to_json(const ProbePoint& point);
// An epoch line read back; throws nlohmann's exception naming a missing field.
EpochStats epoch_from_json(const nlohmann::ordered_json& line);
nlohmann::ordered_json final_line(const RunOutcome& outcome, double target, double total_seconds);

// Appends whole lines to a new log file, flushed as each is written so that a run can be
// watched (or survives a crash) up to its last line.
class RunLogWriter {
  public:
    // Throws std::runtime_error naming the file when it cannot be created.
    explicit RunLogWriter(const std::string& path);
    void write(const nlohmann::ordered_json& line);
    void write(const std::string& line);  // one line of JSON text, without its newline
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    std::ofstream file_;
};

// A log read back, e.g. by `curves`; a run still going (or cut short) has no final line.
struct RunLog {
    std::string path;
    nlohmann::ordered_json header;  // the config line
    std::vector<EpochStats> epochs;
    std::vector<ProbePoint> probes;  // empty unless the run was probed
    std::optional<nlohmann::ordered_json> final;
    std::optional<Divergence> divergence;  // where the final line says the loss diverged

    const nlohmann::ordered_json& config() const { return header.at("config"); }
    double target() const { return config().at("target").get<double>(); }
    RunOutcome outcome() const;
};

// Throws std::runtime_error "path:line: problem" for an unreadable file, a line that is not
// JSON, a missing config line, or a config, epoch, probe or final line without the fields its
// readers use.
RunLog read_run_log(const std::string& path);

}  // namespace bnlab
