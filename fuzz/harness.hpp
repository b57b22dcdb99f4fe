#pragma once
// What the fuzz targets share: the readers take paths, so each input goes to a file first; and
// what a reader may do with bad input is throw one exception naming the file. Anything else (a
// crash, a sanitizer report, an out-of-memory, an exception that does not name the file) is a
// finding: the target aborts.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>

namespace bnlab::fuzz {

// A file of this process's own, rewritten for every input (in /dev/shm when it exists: no disk).
inline const std::string& input_path() {
    static const std::string path =
        std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/bnlab-fuzz-" +
        std::to_string(getpid()) + ".input";
    return path;
}

inline void write_input(const std::uint8_t* data, std::size_t size) {
    std::FILE* file = std::fopen(input_path().c_str(), "wb");
    if (!file || (size > 0 && std::fwrite(data, 1, size, file) != size) || std::fclose(file) != 0) {
        std::perror(input_path().c_str());
        std::abort();
    }
}

// Runs `read` on the input's file: it may succeed or throw an error that names the file.
inline void expect_clear_error(const std::function<void(const std::string&)>& read) {
    try {
        read(input_path());
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "finding: std::bad_alloc (an unchecked size?)\n");
        std::abort();
    } catch (const std::length_error& error) {
        std::fprintf(stderr, "finding: std::length_error (an unchecked size?): %s\n", error.what());
        std::abort();
    } catch (const std::exception& error) {
        const std::string message = error.what();
        if (message.rfind(input_path(), 0) != 0) {
            std::fprintf(stderr, "finding: an error that does not name the file: %s\n",
                         message.c_str());
            std::abort();
        }
    }
}

}  // namespace bnlab::fuzz
