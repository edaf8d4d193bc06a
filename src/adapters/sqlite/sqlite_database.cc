#include "adapters/sqlite/sqlite_database.h"

#include <sqlite3.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace pwrcell::adapters {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// The one translation of SQLite result codes (extended codes are on) into a Status.
Status TranslateCode(int rc, std::string message) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
      return UnavailableError(std::move(message));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExistsError(std::move(message));
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY || rc == SQLITE_CONSTRAINT_TRIGGER) {
        return AbortedError(std::move(message));
      }
      return InternalError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

// Disk trouble (sqlite_database.h): the reason's label for a result code and the errno SQLite saw,
// or nullptr when the failure is not the disk's (busy, a constraint, a bug).
const char* TroubleLabel(int rc, int system_errno) {
  if (system_errno == ENOSPC || system_errno == EDQUOT) return "disk_full";
  if (system_errno == EROFS) return "read_only";
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return "disk_full";
    case SQLITE_READONLY:
      return "read_only";
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return "io_error";
    default:
      return nullptr;
  }
}

// The errno of the last failed system call on the store's files, as the unix VFS keeps it per file
// (the WAL file first: commits write there). sqlite3_system_errno is the thread's errno when SQLite
// noticed, which later calls of its error handling may have changed (EROFS was reported as 0).
int FilesErrno(sqlite3* db) {
  int last = 0;
  sqlite3_file* wal = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) == SQLITE_OK && wal != nullptr &&
      wal->pMethods != nullptr && wal->pMethods->xFileControl(wal, SQLITE_FCNTL_LAST_ERRNO, &last) == SQLITE_OK &&
      last != 0) {
    return last;
  }
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &last) == SQLITE_OK && last != 0) return last;
  return sqlite3_system_errno(db);
}

// "12 KiB free on /dir" for the directory holding `path` (empty when it cannot be told).
std::string FreeSpace(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) return {};
  const auto bytes = static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize;
  std::string text = bytes >= 10ull << 20 ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
  text += " free on " + dir;
  if ((fs.f_flag & ST_RDONLY) != 0) text += ", mounted read-only";
  return text;
}

// Names a statement in an error without flooding the log: its SQL up to the first 80 characters.
std::string Describe(sqlite3_stmt* statement) {
  std::string_view sql = sqlite3_sql(statement);
  constexpr std::size_t kMax = 80;
  return "sqlite '" + std::string(sql.substr(0, kMax)) + (sql.size() > kMax ? "...'" : "'");
}

// sqlite3_bind_{text,blob} bind NULL for a null pointer; an empty value must stay a value.
const char* NonNull(std::string_view bytes) {
  return bytes.data() != nullptr ? bytes.data() : "";
}

}  // namespace

// ---- SqliteStatement ----

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : statement_(std::exchange(other.statement_, nullptr)),
      database_(other.database_),
      bind_error_(std::move(other.bind_error_)) {}

SqliteStatement::~SqliteStatement() {
  if (statement_ != nullptr) Reset();
}

void SqliteStatement::Remember(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = database_->Translate(rc, Describe(statement_) + " binding ?" + std::to_string(index));
  }
}

SqliteStatement& SqliteStatement::BindInt64(int index, std::int64_t value) {
  Remember(sqlite3_bind_int64(statement_, index, value), index);
  return *this;
}

SqliteStatement& SqliteStatement::BindOptionalInt64(int index, std::optional<std::int64_t> value) {
  return value ? BindInt64(index, *value) : BindNull(index);
}

SqliteStatement& SqliteStatement::BindText(int index, std::string_view value) {
  Remember(sqlite3_bind_text64(statement_, index, NonNull(value), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), index);
  return *this;
}

SqliteStatement& SqliteStatement::BindBlob(int index, std::string_view bytes) {
  Remember(sqlite3_bind_blob64(statement_, index, NonNull(bytes), bytes.size(), SQLITE_TRANSIENT), index);
  return *this;
}

SqliteStatement& SqliteStatement::BindNull(int index) {
  Remember(sqlite3_bind_null(statement_, index), index);
  return *this;
}

Result<bool> SqliteStatement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return database_->Translate(rc, Describe(statement_));
}

Status SqliteStatement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
  }
}

void SqliteStatement::Reset() {
  // sqlite3_reset repeats the last step's error, which Step() has already reported.
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
  bind_error_ = Status::Ok();
}

std::int64_t SqliteStatement::ColumnInt64(int column) const {
  return sqlite3_column_int64(statement_, column);
}

std::optional<std::int64_t> SqliteStatement::ColumnOptionalInt64(int column) const {
  if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(statement_, column);
}

std::string SqliteStatement::ColumnText(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
  if (text == nullptr) return {};
  return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

std::string SqliteStatement::ColumnBlob(int column) const {
  // The pointer first, then the size (SQLite's documented order).
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement_, column));
  if (bytes == nullptr) return {};
  return std::string(bytes, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

// ---- SqliteTransaction ----

SqliteTransaction::~SqliteTransaction() {
  if (session_ == nullptr) return;
  // An I/O error may already have rolled the transaction back; ROLLBACK would then fail.
  if (sqlite3_get_autocommit(session_->database_->db_) != 0) return;
  if (!savepoint_.empty()) {
    (void)session_->Exec("ROLLBACK TO " + savepoint_ + "; RELEASE " + savepoint_);
  } else {
    (void)session_->Exec("ROLLBACK");
  }
}

Status SqliteTransaction::Commit() {
  SqliteSession* session = std::exchange(session_, nullptr);
  if (!savepoint_.empty()) {  // in a unit of work: durable when the unit commits
    Status status = session->Exec("RELEASE " + savepoint_);
    if (!status.ok() && sqlite3_get_autocommit(session->database_->db_) == 0) {
      (void)session->Exec("ROLLBACK TO " + savepoint_ + "; RELEASE " + savepoint_);
    }
    return status;
  }
  Status status = session->Exec("COMMIT");
  if (!status.ok() && sqlite3_get_autocommit(session->database_->db_) == 0) (void)session->Exec("ROLLBACK");
  if (status.ok() && sqlite3_total_changes64(session->database_->db_) != changes_) session->database_->NoteCommitted();
  return status;
}

// ---- SqliteUnitOfWork ----

SqliteUnitOfWork::SqliteUnitOfWork(SqliteUnitOfWork&& other) noexcept
    : database_(std::exchange(other.database_, nullptr)), lock_(std::move(other.lock_)) {}

SqliteUnitOfWork::~SqliteUnitOfWork() {
  Status ignored;
  End(false, &ignored);
}

Status SqliteUnitOfWork::Commit(Mode mode) {
  Status status;
  End(true, &status, mode);
  return status;
}

void SqliteUnitOfWork::End(bool commit, Status* status, Mode mode) {
  SqliteDatabase* database = std::exchange(database_, nullptr);
  if (database == nullptr) {
    if (commit) *status = FailedPreconditionError("the unit of work has already ended");
    return;
  }
  sqlite3* db = database->db_;
  database->unit_active_ = false;
  if (commit) {
    if (sqlite3_get_autocommit(db) != 0) {
      *status = UnavailableError("committing a unit of work: SQLite rolled its transaction back before the commit");
    } else {
      // The connection is this unit's until it ends, so no other commit sees the NORMAL setting.
      const bool atomic = mode == Mode::kAtomic;
      if (atomic) (void)sqlite3_exec(db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
      if (const int rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); rc != SQLITE_OK) {
        *status = database->Translate(rc, "committing a unit of work");
      } else if (sqlite3_total_changes64(db) != database->unit_changes_) {
        database->NoteCommitted();
      }
      if (atomic) (void)sqlite3_exec(db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    }
  }
  if (sqlite3_get_autocommit(db) == 0) (void)sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  database->unit_owner_.store(std::thread::id{});
  if (lock_.owns_lock()) lock_.unlock();
}

// ---- SqliteSession ----

Result<SqliteStatement> SqliteSession::Prepare(std::string_view sql) {
  PWRCELL_RETURN_IF_ERROR(database_->CheckUnitAlive());
  auto& cache = database_->statements_;
  auto it = cache.find(std::string(sql));
  if (it == cache.end()) {
    sqlite3_stmt* statement = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v3(database_->db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &statement, &tail);
    if (rc != SQLITE_OK) return database_->Translate(rc, "preparing '" + std::string(sql) + "'");
    if (statement == nullptr || std::string_view(tail).find_first_not_of(" \t\n;") != std::string_view::npos) {
      sqlite3_finalize(statement);
      return InternalError("preparing '" + std::string(sql) + "': expected exactly one statement");
    }
    it = cache.emplace(std::string(sql), statement).first;
  }
  return SqliteStatement(it->second, database_);
}

Status SqliteSession::Exec(std::string_view sql) {
  PWRCELL_RETURN_IF_ERROR(database_->CheckUnitAlive());
  const std::string text(sql);
  const int rc = sqlite3_exec(database_->db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return database_->Translate(rc, "sqlite '" + text.substr(0, 80) + "'");
  return Status::Ok();
}

Result<SqliteTransaction> SqliteSession::BeginImmediate() {
  if (database_->unit_active_) {  // nested in this thread's unit of work
    std::string savepoint = "pwrcell_savepoint_" + std::to_string(++database_->savepoints_);
    PWRCELL_RETURN_IF_ERROR(Exec("SAVEPOINT " + savepoint));
    return SqliteTransaction(this, std::move(savepoint));
  }
  PWRCELL_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  SqliteTransaction transaction(this);
  transaction.changes_ = sqlite3_total_changes64(database_->db_);
  return transaction;
}

std::int64_t SqliteSession::Changes() const {
  return sqlite3_changes64(database_->db_);
}

std::int64_t SqliteSession::LastInsertRowId() const {
  return sqlite3_last_insert_rowid(database_->db_);
}

// ---- SqliteDatabase ----

Result<std::shared_ptr<SqliteDatabase>> SqliteDatabase::Open(const std::string& path) {
  sqlite3* db = nullptr;
  // NOMUTEX: the connection is only ever used under mutex_, so SQLite's own mutex would be
  // redundant.
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status status =
        TranslateCode(rc, "opening " + path + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return status;
  }
  std::shared_ptr<SqliteDatabase> database(new SqliteDatabase(db, path));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  auto session = database->Lock();
  std::string mode;
  {
    auto pragma = session.Prepare("PRAGMA journal_mode=WAL");
    if (!pragma.ok()) return pragma.status().WithContext("opening " + path);
    auto row = pragma->Step();
    if (!row.ok()) return row.status().WithContext("opening " + path);
    if (*row) mode = pragma->ColumnText(0);
  }
  const bool in_memory = path.empty() || path == ":memory:";
  if (mode != "wal" && !in_memory) {
    return FailedPreconditionError("opening " + path + ": the file cannot use WAL mode (journal_mode is '" + mode +
                                   "'); put it on a local file system");
  }
  PWRCELL_RETURN_IF_ERROR(session
                              .Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768; PRAGMA "
                                    "wal_autocheckpoint=8192;")
                              .WithContext("opening " + path));
  return database;
}

SqliteDatabase::~SqliteDatabase() {
  for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
  sqlite3_close_v2(db_);
}

SqliteSession SqliteDatabase::Lock() {
  // Only this thread ever stores its own id here, so a relaxed load cannot see it by mistake.
  if (unit_owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    return SqliteSession(this, std::unique_lock<std::mutex>());  // re-entered by the unit's thread
  }
  return SqliteSession(this, std::unique_lock(mutex_));
}

Result<SqliteUnitOfWork> SqliteDatabase::BeginUnitOfWork() {
  if (unit_owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    return FailedPreconditionError("a unit of work is already open on this thread (units do not nest)");
  }
  std::unique_lock lock(mutex_);
  if (const int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr); rc != SQLITE_OK) {
    return Translate(rc, "beginning a unit of work");
  }
  unit_changes_ = sqlite3_total_changes64(db_);
  unit_active_ = true;
  unit_owner_.store(std::this_thread::get_id());
  return SqliteUnitOfWork(this, std::move(lock));
}

Status SqliteDatabase::Translate(int rc, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += sqlite3_errmsg(db_);
  const int system_errno = (rc & 0xff) == SQLITE_IOERR ? FilesErrno(db_) : sqlite3_system_errno(db_);
  const char* label = TroubleLabel(rc, system_errno);
  if (label != nullptr && system_errno != 0 && (rc & 0xff) != SQLITE_FULL) {
    message += " (" + std::generic_category().message(system_errno) + ")";
  }
  if (label != nullptr) {
    const std::string_view kind(label);
    std::string reason = kind == "disk_full" ? "disk full: " : kind == "read_only" ? "read-only: " : "I/O error: ";
    reason += message;
    if (const std::string space = FreeSpace(path_); !space.empty()) reason += " (" + space + ")";
    {
      std::lock_guard lock(trouble_mutex_);
      trouble_ = std::move(reason);
    }
    in_trouble_.store(true, std::memory_order_release);
    if (trouble_hook_) trouble_hook_(kind);
  }
  return TranslateCode(rc, std::move(message));
}

void SqliteDatabase::NoteCommitted() {
  if (!in_trouble_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(trouble_mutex_);
  trouble_.clear();
  in_trouble_.store(false, std::memory_order_release);
}

std::string SqliteDatabase::Trouble() const {
  if (!InTrouble()) return {};
  std::lock_guard lock(trouble_mutex_);
  return trouble_;
}

Status SqliteDatabase::ProbeWrite() {
  auto session = Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status().WithContext("probing the store");
  std::int64_t version = 0;
  {
    auto read = session.Prepare("PRAGMA user_version");
    if (!read.ok()) return read.status();
    auto row = read->Step();
    if (!row.ok()) return row.status().WithContext("probing the store");
    if (*row) version = read->ColumnInt64(0);
  }
  // Rewriting the header page with the value it holds: a real page write and fsync, no change.
  PWRCELL_RETURN_IF_ERROR(
      session.Exec("PRAGMA user_version = " + std::to_string(version)).WithContext("probing the store"));
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("probing the store"));
  NoteCommitted();
  return Status::Ok();
}

Status SqliteDatabase::CheckUnitAlive() const {
  if (unit_active_ && sqlite3_get_autocommit(db_) != 0) {
    return UnavailableError("SQLite rolled the unit of work's transaction back; nothing more runs in it");
  }
  return Status::Ok();
}

namespace {

// PRAGMA user_version: the file-wide schema version (0 for a new file).
Result<std::int64_t> FileSchemaVersion(SqliteSession& session) {
  auto pragma = session.Prepare("PRAGMA user_version");
  if (!pragma.ok()) return pragma.status();
  auto row = pragma->Step();
  if (!row.ok()) return row.status();
  return *row ? pragma->ColumnInt64(0) : 0;
}

Status RefuseNewerFile(std::int64_t version, const std::string& path) {
  if (version <= kSqliteSchemaVersion) return Status::Ok();
  return FailedPreconditionError(path + " has schema version " + std::to_string(version) +
                                 ", newer than this adapter's " + std::to_string(kSqliteSchemaVersion) +
                                 "; run the newer adapter or restore a matching file");
}

Status RecordFileVersion(SqliteSession& session, std::int64_t version) {
  if (version >= kSqliteSchemaVersion) return Status::Ok();
  return session.Exec("PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion));
}

// The component's recorded version; for a component without a row, 1 when its table exists
// (the file predates schema_versions) and kSqliteSchemaVersion when it does not (new to the file).
Result<std::int64_t> ComponentVersion(SqliteSession& session, const SqliteSchema& schema) {
  {
    auto recorded = session.Prepare("SELECT version FROM schema_versions WHERE component = ?1");
    if (!recorded.ok()) return recorded.status();
    recorded->BindText(1, schema.component);
    auto row = recorded->Step();
    if (!row.ok()) return row.status();
    if (*row) return recorded->ColumnInt64(0);
  }
  auto table = session.Prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  if (!table.ok()) return table.status();
  table->BindText(1, schema.table);
  auto row = table->Step();
  if (!row.ok()) return row.status();
  return *row ? std::int64_t{1} : std::int64_t{kSqliteSchemaVersion};
}

}  // namespace

Status SqliteDatabase::EnsureSchema(std::string_view ddl) {
  auto session = Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  auto version = FileSchemaVersion(session);
  if (!version.ok()) return version.status();
  PWRCELL_RETURN_IF_ERROR(RefuseNewerFile(*version, path_));
  PWRCELL_RETURN_IF_ERROR(session.Exec(ddl));
  PWRCELL_RETURN_IF_ERROR(RecordFileVersion(session, *version));
  return transaction->Commit();
}

Status SqliteDatabase::EnsureSchema(const SqliteSchema& schema) {
  auto session = Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  auto file_version = FileSchemaVersion(session);
  if (!file_version.ok()) return file_version.status();
  PWRCELL_RETURN_IF_ERROR(RefuseNewerFile(*file_version, path_));
  PWRCELL_RETURN_IF_ERROR(session.Exec(
      "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"));
  auto version = ComponentVersion(session, schema);
  if (!version.ok()) return version.status();
  PWRCELL_RETURN_IF_ERROR(RefuseNewerFile(*version, path_));
  for (const SqliteMigration& migration : schema.migrations) {
    if (migration.version <= *version) continue;
    PWRCELL_RETURN_IF_ERROR(migration.apply(session).WithContext(
        "migrating " + std::string(schema.component) + " to schema version " + std::to_string(migration.version)));
  }
  PWRCELL_RETURN_IF_ERROR(session.Exec(schema.ddl));
  {
    auto record = session.Prepare(
        "INSERT INTO schema_versions (component, version) VALUES (?1, ?2) "
        "ON CONFLICT (component) DO UPDATE SET version = excluded.version");
    if (!record.ok()) return record.status();
    record->BindText(1, schema.component).BindInt64(2, kSqliteSchemaVersion);
    PWRCELL_RETURN_IF_ERROR(record->Run());
  }
  PWRCELL_RETURN_IF_ERROR(RecordFileVersion(session, *file_version));
  return transaction->Commit();
}

}  // namespace pwrcell::adapters
