#pragma once
// Files that appear whole or not at all: written to a temporary file in the same folder,
// flushed and fsync'd, then renamed over the target (and the folder fsync'd), so that a crash at
// any moment leaves either the old file or the new one.

#include <string>

namespace bnlab {

// Throws std::runtime_error naming `path` when any step fails; the temporary file is removed.
void write_file_atomically(const std::string& path, const std::string& contents);

// Throws std::runtime_error naming `path` when write_file_atomically could not write there: the
// folder is missing or not writable, or `path` is a folder. For checking before long work that
// ends in a write.
void check_writable(const std::string& path);

}  // namespace bnlab
