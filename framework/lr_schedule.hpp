#pragma once
// Learning-rate schedules stepped once per epoch, as PyTorch's are in the usual loop
// (for epoch: train; scheduler.step()): the rate for epoch e (from 1) is the scheduler's after
// e - 1 steps. Computed with PyTorch's own recurrences, so the rates match its to the last bit.
//   constant             the base rate throughout
//   step:S[:G]           StepLR(step_size=S, gamma=G), G = 0.1 by default: times G every S epochs
//   cosine:T[:M]         CosineAnnealingLR(T_max=T, eta_min=M), M = 0 by default

#include <string>

namespace bnlab {

class LrSchedule {
  public:
    enum class Kind { constant, step, cosine };

    LrSchedule() = default;  // constant
    static LrSchedule step(int step_size, double gamma = 0.1);
    static LrSchedule cosine(int t_max, double eta_min = 0.0);
    // "constant", "step:3", "step:3:0.5", "cosine:10", "cosine:10:0.001"; throws
    // std::invalid_argument saying what it expects for anything else.
    static LrSchedule parse(const std::string& text);

    // The learning rate of epoch `epoch` (from 1) for a base rate `base_lr`.
    double lr(double base_lr, int epoch) const;
    // The form parse() reads: parse(text()) is this schedule.
    std::string text() const;
    Kind kind() const { return kind_; }

  private:
    Kind kind_ = Kind::constant;
    int period_ = 0;       // StepLR's step_size or CosineAnnealingLR's T_max
    double factor_ = 0.0;  // StepLR's gamma or CosineAnnealingLR's eta_min
};

}  // namespace bnlab
