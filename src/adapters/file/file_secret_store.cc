#include "adapters/file/file_secret_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pwrcell::adapters {
namespace {

using nlohmann::json;

std::string ErrnoText(int error) {
  return std::strerror(error);
}

// Closes a file descriptor on every path out of a scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int Get() const { return fd_; }
  // Closes now and reports the error (close can report a deferred write error).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string OctalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// 1-based line and column of the byte at 1-based `position`: where a parse failed, without
// quoting the text around it.
std::string Position(std::string_view text, std::size_t position) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i + 1 < position && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// Reads, checks and parses the secrets file.
Result<json> ReadSecretsFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.Get() < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return NotFoundError("secrets file not found: " + path);
    if (error == EACCES) return PermissionDeniedError("cannot read secrets file " + path + ": permission denied");
    return UnavailableError("cannot open secrets file " + path + ": " + ErrnoText(error));
  }
  struct stat st {};
  if (::fstat(fd.Get(), &st) != 0)
    return UnavailableError("cannot stat secrets file " + path + ": " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError("secrets file " + path + " is not a regular file");
  // Checked on the open descriptor, so the file read is the file checked.
  if ((st.st_mode & 077) != 0) {
    return PermissionDeniedError("secrets file " + path + " has mode " + OctalMode(st.st_mode) +
                                 ", accessible by group or others; run `chmod 600 " + path + "`");
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.Get(), buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError("cannot read secrets file " + path + ": " + ErrnoText(errno));
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // e.what() quotes the text near the error, which may be a secret: give the position only.
    return InvalidArgumentError("secrets file " + path + " is not valid JSON (error at " + Position(text, e.byte) +
                                ")");
  }
  if (!doc.is_object()) {
    return InvalidArgumentError("secrets file " + path + " must hold a JSON object mapping secret ids to values");
  }
  return doc;
}

// Writes `text` to a temporary file beside `path` (mode 0600), syncs it, renames it over `path`
// and syncs the directory, so that the rename survives a crash. When `path` is a symbolic link
// (e.g. a mounted secret, or a link to a file kept elsewhere), the file it leads to is replaced,
// beside itself: renaming over the link would replace the link with a regular file and leave the
// real file stale.
Status WriteAtomically(const std::string& link, const std::string& text) {
  std::error_code error_code;
  const std::filesystem::path resolved = std::filesystem::canonical(link, error_code);
  if (error_code) {
    return UnavailableError("cannot resolve the secrets file " + link + ": " + error_code.message());
  }
  const std::string path = resolved.string();
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  Fd fd(::mkostemp(name.data(), O_CLOEXEC));  // mkostemp creates the file with mode 0600
  if (fd.Get() < 0)
    return UnavailableError("cannot create a temporary file in " + dir.string() + ": " + ErrnoText(errno));
  tmp = name.data();
  auto fail = [&tmp](const std::string& what, int error) {
    ::unlink(tmp.c_str());
    return UnavailableError(what + " " + tmp + ": " + ErrnoText(error));
  };
  // Explicit, in case a future libc or umask policy differs.
  if (::fchmod(fd.Get(), S_IRUSR | S_IWUSR) != 0) return fail("cannot chmod", errno);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd.Get(), text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.Get()) != 0) return fail("cannot fsync", errno);
  if (fd.Close() != 0) return fail("cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename over " + path + " the file", errno);
  // Best effort: the data is already safe in the new file; only the rename's durability is at stake.
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.Get() >= 0) ::fsync(dir_fd.Get());
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<FileSecretStore>> FileSecretStore::Open(std::string path) {
  auto doc = ReadSecretsFile(path);
  if (!doc.ok()) return doc.status();
  return std::unique_ptr<FileSecretStore>(new FileSecretStore(std::move(path)));
}

Result<std::string> FileSecretStore::Get(const std::string& secret_id) {
  std::lock_guard lock(mutex_);
  auto doc = ReadSecretsFile(path_);
  if (!doc.ok()) return doc.status();
  auto it = doc->find(secret_id);
  if (it == doc->end()) return NotFoundError("no secret '" + secret_id + "' in secrets file " + path_);
  return it->dump(-1, ' ', false, json::error_handler_t::replace);
}

Status FileSecretStore::Put(const std::string& secret_id, const std::string& value) {
  json parsed = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgumentError("the value for secret '" + secret_id + "' is not valid JSON");
  std::lock_guard lock(mutex_);
  auto doc = ReadSecretsFile(path_);
  if (!doc.ok()) return doc.status();
  (*doc)[secret_id] = std::move(parsed);
  return WriteAtomically(path_, doc->dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace pwrcell::adapters
