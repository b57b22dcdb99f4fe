// The numbers `train` gives for each preset, bit for bit, against the ones it gave when they were
// recorded (tests/golden/train_reference.json): a guard for any change that must not change
// training (a refactoring of the training loop, say). The numbers depend on the CPU's kernels
// (OpenBLAS's and bnlab's SIMD) and on the build (Release; the sanitizer build's -O1 differs),
// so they are compared where both are the recorded ones; elsewhere the test says so and checks
// that the probed run repeats to the bit instead.
//   Record anew (only when a change is meant to change the numbers, and say so in its commit):
//   BNLAB_RECORD_TRAIN_REFERENCE=1 build/bin/bnlab_tests --test-case='*recorded*'
#include <cstdlib>
#include <fstream>

#include "experiment_helpers.hpp"
#include "framework/blas_threads.hpp"
#include "framework/simd.hpp"

using namespace bnlab;
using namespace bnlab::testing;
using Json = nlohmann::ordered_json;

namespace {

const std::string kReferenceFile =
    std::string(BNLAB_GOLDEN_FILE).substr(0, std::string(BNLAB_GOLDEN_FILE).rfind('/')) +
    "/train_reference.json";

struct ReferenceRun {
    const char* name;
    std::vector<std::string> flags;
};

// Two epochs of each preset on one thread (the thread count can change the last bits), and the
// paper's network probed.
const std::vector<ReferenceRun> kRuns = {
    {"paper", {"--preset", "paper"}},
    {"deep", {"--preset", "deep"}},
    {"relu", {"--preset", "relu"}},
    {"paper-probe", {"--preset", "paper", "--probe", "--probe-points", "3"}},
};

// The run's epoch, probe and final lines without what depends on the clock.
Json numbers_of_run(const ReferenceRun& run, const TempDir& dir) {
    const std::string log = dir / (std::string(run.name) + ".jsonl");
    std::vector<std::string> arguments = {kTrain, "--epochs", "2", "--threads", "1", "--log", log};
    arguments.insert(arguments.end(), run.flags.begin(), run.flags.end());
    const int status = wait_for(spawn(arguments, dir / (std::string(run.name) + ".out")));
    REQUIRE_MESSAGE(status == 0, "train " << run.name << " failed; see its output");
    Json numbers = Json::array();
    for (const Json& line : without_timing(read_lines(log)))
        if (line.at("type") != "config") numbers.push_back(line);
    return numbers;
}

Json this_machine() {
    return {{"openblas_core", blas_core_name()},
            {"simd", simd_architecture()},
            {"build", BNLAB_BUILD_KIND}};
}

}  // namespace

TEST_CASE("train gives the recorded numbers for every preset, bit for bit") {
    TempDir dir;
    Json runs = Json::object();
    for (const ReferenceRun& run : kRuns)
        runs[run.name] = numbers_of_run(run, dir);

    if (std::getenv("BNLAB_RECORD_TRAIN_REFERENCE")) {
        const Json reference = {{"machine", this_machine()},
                                {"command", "train --epochs 2 --threads 1 --log … PRESET FLAGS"},
                                {"runs", runs}};
        std::ofstream(kReferenceFile) << reference.dump(1) << "\n";
        MESSAGE("recorded " << kReferenceFile);
        return;
    }
    std::ifstream file(kReferenceFile);
    REQUIRE_MESSAGE(file, "cannot read " << kReferenceFile);
    const Json reference = Json::parse(file);
    if (reference.at("machine") != this_machine()) {
        MESSAGE("the reference was recorded with " << reference.at("machine").dump() << ", this is "
                                                   << this_machine().dump()
                                                   << ": checking that a run repeats instead");
        const ReferenceRun& probed = kRuns.back();
        CHECK(numbers_of_run(probed, dir) == runs[probed.name]);
        return;
    }
    for (const ReferenceRun& run : kRuns) {
        CAPTURE(run.name);
        const Json& expected = reference.at("runs").at(run.name);
        REQUIRE(runs[run.name].size() == expected.size());
        // Every recorded field (lines may have gained fields since).
        for (std::size_t i = 0; i < expected.size(); ++i)
            for (const auto& field : expected[i].items()) {
                CAPTURE(field.key());
                CHECK(runs[run.name][i].value(field.key(), Json()) == field.value());
            }
    }
}
