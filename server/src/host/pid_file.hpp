// server.pid_file: `trellis serve` claims the file before it loads anything (refusing while
// another running trellis holds it), writes its process id there once it serves, and removes
// it at exit. A file left by a process that is gone (or is no trellis) is replaced.
#pragma once

#include <filesystem>
#include <string>

#include <tl/expected.hpp>

namespace trellis::host {

class PidFile {
public:
    // Checks the file (an empty path: no pid file, every call does nothing). The error says
    // which process holds it or why the file cannot be used.
    static tl::expected<PidFile, std::string> claim(std::filesystem::path file_path);

    PidFile(PidFile&& other) noexcept;
    PidFile& operator=(PidFile&&) = delete;
    PidFile(const PidFile&) = delete;
    PidFile& operator=(const PidFile&) = delete;
    ~PidFile();  // remove()

    // Writes this process's id atomically (a temporary file renamed over the path).
    tl::expected<void, std::string> write();
    // Removes the file if it still holds this process's id.
    void remove() noexcept;

    const std::filesystem::path& path() const { return path_; }

private:
    explicit PidFile(std::filesystem::path file_path) : path_(std::move(file_path)) {}

    std::filesystem::path path_;
    bool written_ = false;
};

}  // namespace trellis::host
