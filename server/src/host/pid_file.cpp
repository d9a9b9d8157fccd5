// The pid file of `trellis serve` (see pid_file.hpp).
#include "host/pid_file.hpp"

#include <cerrno>
#include <charconv>
#include <csignal>
#include <fstream>
#include <iterator>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace trellis::host {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path, std::size_t limit = 64) {
    std::ifstream in(path, std::ios::binary);
    std::string text;
    char c = 0;
    while (text.size() < limit && in.get(c)) text.push_back(c);
    return text;
}

// The process id a pid file holds: 0 when empty, -1 when it holds anything else.
long long parse_pid(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    if (text.empty()) return 0;
    long long pid = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (error != std::errc() || end != text.data() + text.size() || pid <= 0) return -1;
    return pid;
}

bool alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// /proc/PID/comm: the name of the process's main thread (the binary's name, at most 15 bytes).
std::string process_name(pid_t pid) {
    std::string name = read_text("/proc/" + std::to_string(pid) + "/comm");
    while (!name.empty() && name.back() == '\n') name.pop_back();
    return name;
}

std::string error_text(int code) { return std::generic_category().message(code); }

}  // namespace

tl::expected<PidFile, std::string> PidFile::claim(fs::path file_path) {
    PidFile file(std::move(file_path));
    if (file.path_.empty()) return file;
    const std::string where = "server.pid_file " + file.path_.string();
    std::error_code ec;
    const fs::path dir = file.path_.parent_path();
    if (!fs::is_directory(dir, ec))
        return tl::unexpected(where + ": the directory " + dir.string() + " does not exist");
    if (access(dir.c_str(), W_OK) != 0)
        return tl::unexpected(where + ": cannot write in " + dir.string() + ": " + error_text(errno));
    if (!fs::exists(file.path_, ec)) return file;
    if (!fs::is_regular_file(file.path_, ec))
        return tl::unexpected(where + " exists and is not a regular file; remove it or choose another path");
    const long long pid = parse_pid(read_text(file.path_));
    if (pid < 0)
        return tl::unexpected(where +
                              " exists and holds no process id; it is not a pid file: remove it or choose another path");
    if (pid == 0 || pid == getpid()) return file;  // empty, or a stale file that names us (a container's PID 1)
    const auto other = static_cast<pid_t>(pid);
    if (alive(other) && process_name(other) == "trellis")
        return tl::unexpected(where + " names process " + std::to_string(pid) +
                              ", a running trellis: stop that server first (or give this one another pid file)");
    return file;  // stale: that process is gone, or the id now belongs to another program
}

PidFile::PidFile(PidFile&& other) noexcept : path_(std::move(other.path_)), written_(other.written_) {
    other.written_ = false;
}

PidFile::~PidFile() { remove(); }

tl::expected<void, std::string> PidFile::write() {
    if (path_.empty()) return {};
    const std::string where = "server.pid_file " + path_.string();
    const fs::path temporary = path_.string() + ".tmp." + std::to_string(getpid());
    const std::string text = std::to_string(getpid()) + "\n";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return tl::unexpected("cannot write " + where + ": " + temporary.string() + ": " + error_text(errno));
    const bool complete = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int write_error = errno;
    ::close(fd);
    if (!complete || ::rename(temporary.c_str(), path_.c_str()) != 0) {
        const int code = complete ? errno : write_error;
        ::unlink(temporary.c_str());
        return tl::unexpected("cannot write " + where + ": " + error_text(code));
    }
    written_ = true;
    return {};
}

void PidFile::remove() noexcept {
    if (!written_) return;
    written_ = false;
    // Only our own: a second server started after ours may have replaced it.
    if (parse_pid(read_text(path_)) == getpid()) ::unlink(path_.c_str());
}

}  // namespace trellis::host
