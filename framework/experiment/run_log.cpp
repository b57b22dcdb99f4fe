#include "framework/experiment/run_log.hpp"

#include "framework/experiment/json_fields.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace bnlab {

RunOutcome outcome_of(const std::vector<EpochStats>& epochs, double target,
                      std::optional<Divergence> divergence, double chance) {
    RunOutcome outcome;
    outcome.divergence = divergence;
    outcome.chance = chance;
    double seconds = 0.0;
    for (const EpochStats& epoch : epochs) {
        if (!outcome.epochs_to_target && judged_acc(epoch) >= target)
            outcome.epochs_to_target = epoch.epoch;
        if (judged_acc(epoch) > outcome.best_test_acc) {
            outcome.best_test_acc = judged_acc(epoch);
            outcome.best_epoch = epoch.epoch;
        }
        seconds += epoch.seconds;
    }
    if (!epochs.empty()) {
        outcome.judged_on_validation = epochs.back().val_acc.has_value();
        outcome.regression = epochs.back().regression;
        outcome.final_test_acc = judged_acc(epochs.back());
        outcome.seconds_per_epoch = seconds / double(epochs.size());
    }
    outcome.stuck =
        !divergence && !epochs.empty() && chance > 0.0 && outcome.best_test_acc < 1.5 * chance;
    return outcome;
}

nlohmann::ordered_json to_json(const EpochStats& epoch) {
    nlohmann::ordered_json line = {{"type", "epoch"}, {"epoch", epoch.epoch}, {"step", epoch.step}};
    add_scores(line, "train", epoch.train_loss, epoch.train_acc, epoch.regression);
    if (epoch.val_acc)
        add_scores(line, "val", epoch.val_loss.value_or(0.0), *epoch.val_acc, epoch.regression);
    else
        add_scores(line, "test", epoch.test_loss, epoch.test_acc, epoch.regression);
    line["lr"] = epoch.lr;
    line["seconds"] = epoch.seconds;
    line["samples_per_s"] = epoch.samples_per_s;
    line["eval_seconds"] = epoch.eval_seconds;
    return line;
}

void add_scores(nlohmann::ordered_json& line, const std::string& set, double loss, double score,
                bool regression) {
    line[set + "_loss"] = loss;
    if (regression) {
        line[set + "_r2"] = score;
        line[set + "_rmse"] = std::sqrt(loss);
    } else {
        line[set + "_acc"] = score;
    }
}

nlohmann::ordered_json to_json(const ProbePoint& point) {
    return {{"type", "probe"},    {"epoch", point.epoch},
            {"step", point.step}, {"layer", point.layer},
            {"p15", point.p15},   {"p50", point.p50},
            {"p85", point.p85},   {"grad_norm", point.grad_norm}};
}

nlohmann::ordered_json final_line(const RunOutcome& outcome, double target, double total_seconds) {
    nlohmann::ordered_json diverged_at;  // null unless diverged
    if (outcome.divergence)
        diverged_at = {{"epoch", outcome.divergence->epoch}, {"step", outcome.divergence->step}};
    const char* status = outcome.error        ? "failed"
                         : outcome.divergence ? "diverged"
                         : outcome.stopped    ? "stopped"
                                              : "completed";
    // The judged set and the score name the fields: a validation accuracy is never called a
    // test one, an R² never an accuracy.
    const std::string judged = std::string(outcome.judged_on_validation ? "val" : "test") +
                               (outcome.regression ? "_r2" : "_acc");
    nlohmann::ordered_json line = {
        {"type", "final"},
        {"status", status},
        {"target", target},
        {"epochs_to_target", outcome.epochs_to_target
                                 ? nlohmann::ordered_json(*outcome.epochs_to_target)
                                 : nlohmann::ordered_json()},
        {"best_" + judged, outcome.best_test_acc},
        {"best_epoch", outcome.best_epoch},
        {"final_" + judged, outcome.final_test_acc},
        {"seconds_per_epoch", outcome.seconds_per_epoch},
        {"seconds", total_seconds},
        {"diverged_at", diverged_at},
        {"stuck", outcome.stuck},
        {"chance",
         outcome.chance > 0.0 ? nlohmann::ordered_json(outcome.chance) : nlohmann::ordered_json()}};
    if (outcome.test)
        line["test"] = {{"epoch", outcome.test->epoch},
                        {"test_loss", outcome.test->loss},
                        {outcome.regression ? "test_r2" : "test_acc", outcome.test->acc}};
    if (outcome.stopped)
        line["stopped_by"] = {{"callback", outcome.stopped->callback},
                              {"reason", outcome.stopped->reason}};
    if (outcome.error) line["error"] = *outcome.error;
    return line;
}

RunLogWriter::RunLogWriter(const std::string& path) : path_(path), file_(path) {
    if (!file_)
        throw std::runtime_error("cannot write the log " + path + ": " + std::strerror(errno));
}

void RunLogWriter::write(const nlohmann::ordered_json& line) {
    write(line.dump());
}

void RunLogWriter::write(const std::string& line) {
    file_ << line << '\n';
    file_.flush();
    if (!file_) throw std::runtime_error("writing the log " + path_ + " failed");
}

RunOutcome RunLog::outcome() const {
    // Logs from before the chance field have none: not known, so never stuck.
    const bool has_chance = final && final->contains("chance") && final->at("chance").is_number();
    return outcome_of(epochs, target(), divergence,
                      has_chance ? final->at("chance").get<double>() : 0.0);
}

EpochStats epoch_from_json(const nlohmann::ordered_json& line) {
    EpochStats epoch;
    epoch.epoch = integer_at<int>(line, "epoch");
    epoch.step = integer_at<long>(line, "step");
    epoch.regression = line.contains("train_r2");
    const std::string score = epoch.regression ? "_r2" : "_acc";
    epoch.train_loss = line.at("train_loss").get<double>();
    epoch.train_acc = line.at("train" + score).get<double>();
    if (line.contains("val_loss")) {
        epoch.val_loss = line.at("val_loss").get<double>();
        epoch.val_acc = line.at("val" + score).get<double>();
        epoch.test_loss = epoch.test_acc = std::nan("");
    } else {
        epoch.test_loss = line.at("test_loss").get<double>();
        epoch.test_acc = line.at("test" + score).get<double>();
    }
    epoch.lr = line.at("lr").get<double>();
    epoch.seconds = line.at("seconds").get<double>();
    epoch.samples_per_s = line.at("samples_per_s").get<double>();
    epoch.eval_seconds = line.value("eval_seconds", 0.0);
    return epoch;
}

RunLog read_run_log(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    RunLog log;
    log.path = path;
    std::string text;
    for (int number = 1; std::getline(file, text); ++number) {
        const std::string where = path + ":" + std::to_string(number) + ": ";
        if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            const nlohmann::ordered_json line = nlohmann::ordered_json::parse(text);
            const std::string type = line.at("type").get<std::string>();
            if (log.header.is_null() && type != "config")
                throw std::runtime_error("expected the config line first, got a '" + type +
                                         "' line");
            if (type == "config") {
                if (!log.header.is_null()) throw std::runtime_error("a second config line");
                // What the tables read of every run.
                line.at("config").at("target").get<double>();
                line.at("config").at("seed");
                log.header = line;
            } else if (type == "epoch") {
                log.epochs.push_back(epoch_from_json(line));
            } else if (type == "probe") {
                log.probes.push_back({integer_at<int>(line, "epoch"),
                                      integer_at<long>(line, "step"),
                                      integer_at<int>(line, "layer"), line.at("p15").get<double>(),
                                      line.at("p50").get<double>(), line.at("p85").get<double>(),
                                      line.at("grad_norm").get<double>()});
            } else if (type == "final") {
                const std::string status = line.at("status").get<std::string>();
                if (status == "diverged") {
                    const nlohmann::ordered_json& at = line.at("diverged_at");
                    log.divergence =
                        Divergence{integer_at<int>(at, "epoch"), integer_at<long>(at, "step")};
                } else if (status != "completed" && status != "stopped" && status != "failed") {
                    throw std::runtime_error("unknown final status '" + status + "'");
                }
                log.final = line;
            }  // other types are for other readers
        } catch (const nlohmann::ordered_json::exception& error) {
            throw std::runtime_error(where + error.what());
        } catch (const std::runtime_error& error) {
            throw std::runtime_error(where + error.what());
        }
    }
    if (log.header.is_null()) throw std::runtime_error(path + ": no config line (empty log?)");
    return log;
}

}  // namespace bnlab
