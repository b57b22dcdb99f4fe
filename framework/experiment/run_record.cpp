#include "framework/experiment/run_record.hpp"

#include <unistd.h>

#include <ctime>

#include <spdlog/spdlog.h>
#include <zlib.h>
#include <CLI/Version.hpp>
#include <xtensor-blas/xblas_config.hpp>
#include <xtensor/xtensor_config.hpp>

#include "framework/blas_threads.hpp"

namespace bnlab {

namespace {

std::string host_name() {
    char name[256] = {};
    return gethostname(name, sizeof name - 1) == 0 ? name : "";
}

}  // namespace

std::string time_now(const char* format, bool utc) {
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    if (utc)
        gmtime_r(&now, &parts);
    else
        localtime_r(&now, &parts);
    char text[64];
    return std::strftime(text, sizeof text, format, &parts) > 0 ? text : "";
}

std::string command_line(int argc, const char* const* argv) {
    std::string command;
    for (int i = 0; i < argc; ++i)
        command += (i ? " " : "") + std::string(argv[i]);
    return command;
}

nlohmann::ordered_json library_versions() {
    auto version = [](int major, int minor, int patch) {
        return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    };
    return {
        {"bnlab", BNLAB_VERSION},
        {"xtensor", version(XTENSOR_VERSION_MAJOR, XTENSOR_VERSION_MINOR, XTENSOR_VERSION_PATCH)},
        {"xtensor-blas", version(XTENSOR_BLAS_VERSION_MAJOR, XTENSOR_BLAS_VERSION_MINOR,
                                 XTENSOR_BLAS_VERSION_PATCH)},
        {"openblas", blas_config()},
        {"spdlog", version(SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH)},
        {"nlohmann_json", version(NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                  NLOHMANN_JSON_VERSION_PATCH)},
        {"cli11", CLI11_VERSION},
        {"zlib", ZLIB_VERSION},
        {"compiler", std::string("g++ ") + __VERSION__}};
}

nlohmann::ordered_json config_line(const nlohmann::ordered_json& config, Sequential& model,
                                   int threads_requested, const nlohmann::ordered_json& record) {
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < model.size(); ++i)
        layers.push_back(model[i].describe());
    nlohmann::ordered_json line = {{"type", "config"},
                                   {"config", config},
                                   {"model",
                                    {{"layers", layers},
                                     {"parameters", model.parameter_count()},
                                     {"summary", model.summary()}}},
                                   {"threads",
                                    {{"requested", threads_requested},
                                     {"bnlab", thread_count()},
                                     {"openblas", openblas_threads()},
                                     {"openblas_core", blas_core_name()},
                                     {"hardware", sysconf(_SC_NPROCESSORS_ONLN)}}},
                                   {"versions", library_versions()},
                                   {"started", time_now("%Y-%m-%dT%H:%M:%SZ", true)},
                                   {"host", host_name()}};
    if (record.is_object()) line.update(record);
    return line;
}

}  // namespace bnlab
