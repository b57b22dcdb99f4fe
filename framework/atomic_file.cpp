#include "framework/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace bnlab {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int error) {
    throw std::runtime_error("cannot write " + path + ": " + what + ": " + std::strerror(error));
}

std::string folder_of(const std::string& path) {
    const std::string folder = std::filesystem::path(path).parent_path().string();
    return folder.empty() ? "." : folder;
}

}  // namespace

void check_writable(const std::string& path) {
    const std::string folder = folder_of(path);
    if (::access(folder.c_str(), W_OK | X_OK) != 0) fail(path, "folder " + folder, errno);
    if (std::filesystem::is_directory(path)) fail(path, "it is a folder", EISDIR);
}

void write_file_atomically(const std::string& path, const std::string& contents) {
    const std::string temporary = path + ".tmp" + std::to_string(::getpid());
    const int file = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (file < 0) fail(path, "creating " + temporary, errno);
    std::size_t written = 0;
    while (written < contents.size()) {
        const ssize_t count = ::write(file, contents.data() + written, contents.size() - written);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) {
            const int error = errno;
            ::close(file);
            ::unlink(temporary.c_str());
            fail(path, "writing", error);
        }
        written += std::size_t(count);
    }
    if (::fsync(file) != 0 || ::close(file) != 0) {
        const int error = errno;
        ::unlink(temporary.c_str());
        fail(path, "flushing to disk", error);
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(temporary.c_str());
        fail(path, "renaming " + temporary, error);
    }
    // The rename itself is durable only once the folder is.
    const int directory = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory >= 0) {
        ::fsync(directory);
        ::close(directory);
    }
}

}  // namespace bnlab
