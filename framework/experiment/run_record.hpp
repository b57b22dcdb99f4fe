#pragma once
// What a run records about itself besides its numbers: the log's config line (configuration,
// model, threads, library versions, start time, host), and the console's progress bar.

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "framework/sequential.hpp"

namespace bnlab {

// {"type":"config", "config":…, "model":{"layers","parameters","summary"}, "threads":{…},
//  "versions":{…}, "started":…, "host":…} and then every field of `record`.
nlohmann::ordered_json config_line(const nlohmann::ordered_json& config, Sequential& model,
                                   int threads_requested, const nlohmann::ordered_json& record);

// bnlab, xtensor, xtensor-blas, OpenBLAS, spdlog, nlohmann-json, CLI11, zlib, the compiler.
nlohmann::ordered_json library_versions();

// The time now, formatted by strftime's `format`, in UTC or local time.
std::string time_now(const char* format, bool utc);

// argv joined by spaces, for the log.
std::string command_line(int argc, const char* const* argv);

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// A bar redrawn in place on stdout: "  epoch 3/10 [#########-----------]  450/1000  loss 0.4321".
class ProgressBar {
  public:
    ProgressBar(bool enabled, int epoch, int epochs, std::size_t steps)
        : enabled_(enabled),
          epoch_(epoch),
          epochs_(epochs),
          steps_(steps),
          redraw_every_(steps / 100 > 1 ? steps / 100 : 1) {}
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void update(std::size_t done, double mean_loss) {
        if (!enabled_ || (done % redraw_every_ != 0 && done != steps_)) return;
        constexpr std::size_t width = 30;
        const std::size_t filled = steps_ == 0 ? width : width * done / steps_;
        std::printf("\r  epoch %d/%d [%s%s] %zu/%zu  loss %.4f", epoch_, epochs_,
                    std::string(filled, '#').c_str(), std::string(width - filled, '-').c_str(),
                    done, steps_, mean_loss);
        std::fflush(stdout);
    }
    // Clears the bar's line so that the next log line starts clean.
    ~ProgressBar() {
        if (enabled_) std::printf("\r\033[K"), std::fflush(stdout);
    }

  private:
    bool enabled_;
    int epoch_, epochs_;
    std::size_t steps_, redraw_every_;
};

}  // namespace bnlab
