#include "framework/lr_schedule.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "framework/tensor.hpp"

namespace bnlab {

LrSchedule LrSchedule::step(int step_size, double gamma) {
    if (step_size < 1)
        throw std::invalid_argument("step schedule: step size must be at least 1, got " +
                                    std::to_string(step_size));
    if (!(gamma > 0.0) || !std::isfinite(gamma))
        throw std::invalid_argument("step schedule: gamma must be a finite number > 0");
    LrSchedule schedule;
    schedule.kind_ = Kind::step;
    schedule.period_ = step_size;
    schedule.factor_ = gamma;
    return schedule;
}

LrSchedule LrSchedule::cosine(int t_max, double eta_min) {
    if (t_max < 1)
        throw std::invalid_argument("cosine schedule: T_max must be at least 1, got " +
                                    std::to_string(t_max));
    if (!(eta_min >= 0.0) || !std::isfinite(eta_min))
        throw std::invalid_argument("cosine schedule: eta_min must be a finite number >= 0");
    LrSchedule schedule;
    schedule.kind_ = Kind::cosine;
    schedule.period_ = t_max;
    schedule.factor_ = eta_min;
    return schedule;
}

LrSchedule LrSchedule::parse(const std::string& text) {
    const std::string expected =
        "expected constant, step:STEP_SIZE[:GAMMA] or cosine:T_MAX[:ETA_MIN], got '" + text + "'";
    std::vector<std::string> parts{""};
    for (char c : text) {
        if (c == ':')
            parts.emplace_back();
        else
            parts.back().push_back(c);
    }
    if (parts.size() == 1 && parts[0] == "constant") return {};
    if ((parts[0] != "step" && parts[0] != "cosine") || parts.size() < 2 || parts.size() > 3)
        throw std::invalid_argument(expected);
    int period = 0;
    double factor = parts[0] == "step" ? 0.1 : 0.0;
    if (!parse_number(parts[1], period) || (parts.size() == 3 && !parse_number(parts[2], factor)))
        throw std::invalid_argument(expected);
    return parts[0] == "step" ? step(period, factor) : cosine(period, factor);
}

double LrSchedule::lr(double base_lr, int epoch) const {
    // PyTorch's recurrences, from last_epoch = 0 (the base rate) to last_epoch = epoch - 1.
    double lr = base_lr;
    for (int last_epoch = 1; last_epoch < epoch; ++last_epoch) {
        if (kind_ == Kind::step) {
            // StepLR.get_lr
            if (last_epoch % period_ == 0) lr = lr * factor_;
        } else if (kind_ == Kind::cosine) {
            // CosineAnnealingLR.get_lr
            const double pi = 3.141592653589793, t_max = period_, eta_min = factor_;
            if ((last_epoch - 1 - period_) % (2 * period_) == 0)
                lr = lr + (base_lr - eta_min) * (1 - std::cos(pi / t_max)) / 2;
            else
                lr = (1 + std::cos(pi * last_epoch / t_max)) /
                         (1 + std::cos(pi * (last_epoch - 1) / t_max)) * (lr - eta_min) +
                     eta_min;
        }
    }
    return lr;
}

std::string LrSchedule::text() const {
    if (kind_ == Kind::constant) return "constant";
    char factor[32];  // the shortest text that reads back as the same double
    const auto written = std::to_chars(factor, factor + sizeof factor, factor_);
    return std::string(kind_ == Kind::step ? "step:" : "cosine:") + std::to_string(period_) + ":" +
           std::string(factor, written.ptr);
}

}  // namespace bnlab
