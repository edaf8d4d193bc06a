// The secrets file of `serve`: a JSON object mapping each secret id to its value, e.g.
//   {"ConcertoCredentials": {"email": "...", "password": "..."}, "CesCredentials": {"api_key": "..."}}
// Get returns the JSON text of one value; Put replaces one value and rewrites the file.
//
// The file must be private to its owner (no permission bits for group or others: chmod 600);
// anything else is refused. Every Get re-reads the file, so an operator's edit (a rotated
// password) takes effect without a restart; every Put writes a temporary file (mode 0600) in the
// same directory, fsyncs it and renames it over the old one, so a reader (in this process or
// another) sees the old file or the new one, never half of one. A symlinked file is replaced by
// a regular file on the first Put.
//
// Secret values never appear in an error message: parse errors give a line and column only.
//
// Thread-safe: one mutex serializes reads and rewrites inside the process. Two processes
// writing at the same moment do not corrupt the file; the last rename wins.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "ports/secret_store.h"

namespace pwrcell::adapters {

class FileSecretStore final : public ports::SecretStore {
 public:
  // Reads and checks the file once, so that a missing, unsafe or malformed file stops the
  // program at start. Errors: those of Get's file read (below).
  static Result<std::unique_ptr<FileSecretStore>> Open(std::string path);

  // Errors: kNotFound when the file is missing or holds no secret with this id;
  // kPermissionDenied when the file is accessible by group or others (the message says
  // `chmod 600 <path>`) or cannot be read; kInvalidArgument when it is not a JSON object or not a
  // regular file; kUnavailable on another I/O error.
  Result<std::string> Get(const std::string& secret_id) override;

  // `value` must be JSON text (usually an object). Creates or replaces the secret.
  // Errors: kInvalidArgument when `value` is not JSON; the file errors of Get; kUnavailable when
  // the temporary file cannot be written, synced or renamed (the old file is then untouched).
  Status Put(const std::string& secret_id, const std::string& value) override;

 private:
  explicit FileSecretStore(std::string path) : path_(std::move(path)) {}

  std::mutex mutex_;
  const std::string path_;
};

}  // namespace pwrcell::adapters
