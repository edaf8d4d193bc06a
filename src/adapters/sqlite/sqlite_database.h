// A small RAII wrapper over one SQLite connection, shared by the SQLite device store and queues.
//
// This is the one place where SQLite result codes become a Status (CONVENTIONS.md "Errors"):
//   SQLITE_BUSY, LOCKED, IOERR, FULL, READONLY, CANTOPEN, NOMEM, PROTOCOL -> kUnavailable (retry:
//   a full disk, or a file system that turned read-only or fails, is a state of the machine that
//   passes, never the fault of the data written);
//   a UNIQUE / PRIMARY KEY constraint -> kAlreadyExists;
//   a FOREIGN KEY / trigger constraint -> kAborted (another writer changed what we relied on);
//   anything else (a malformed statement, a corrupt file, NOT NULL / CHECK) -> kInternal: a bug
//   in our SQL or a damaged file, which no retry fixes.
// No sqlite3 type appears in this header; the adapters above it see Status and plain values.
//
// Concurrency: one connection serves every thread of a process, one thread at a time: Lock()
// hands out an SqliteSession that holds the connection's mutex. Other processes may open the
// same file: the database runs in WAL mode (readers never block the writer) with a 5 s busy
// timeout, so a writer waits for another process's write transaction instead of failing.
//
// Disk trouble: a statement failing with SQLITE_FULL (or ENOSPC / EDQUOT), SQLITE_READONLY (or
// EROFS), SQLITE_IOERR or SQLITE_CANTOPEN marks the connection in trouble (Trouble(): "disk full:
// ...", "read-only: ...", "I/O error: ..."), and is counted by the trouble hook; the next commit
// that reaches the disk, or a ProbeWrite() that succeeds, clears it. A failed commit is rolled
// back (never half done), and nothing is reported committed that is not.
//
// Every commit waits for fsync (synchronous=FULL). A thread that makes many small writes in a
// row (a batch of queue messages: receive, update devices, enqueue, delete) can make them one
// transaction with BeginUnitOfWork(), and so one fsync instead of hundreds.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace pwrcell::adapters {

// The schema version of the adapter's database file (PRAGMA user_version), covering every table
// the SQLite adapters create. Bump it, with a migration, when any of them changes shape. An
// adapter refuses a file of a newer version (an older adapter would write it without keeping
// the newer shape's extra columns and tables in step).
//   1: devices(remote_id, inverter_rcpn, version, record, updated_at), queue_messages.
//   2: devices gains site_id (index devices_by_site) and loses inverter_rcpn, replaced by the
//      table device_inverters(rcpn, remote_id); schema_versions records each component's version.
//   3: queue_messages gains leased (ready / leased messages, three partial indexes instead of
//      queue_messages_ready) and queue_counts (sqlite_queue.h).
//   4: devices gains last_heard_at and the columns mirroring the record for the fleet-wide
//      queries; the table device_readings holds the inverter readings (sqlite_device_store.h).
inline constexpr int kSqliteSchemaVersion = 4;

class SqliteDatabase;
class SqliteSession;

// One step of a component's schema history: brings the component's tables from the shape of
// the previous file version to the shape of `version`. Runs inside EnsureSchema's transaction,
// before the component's DDL; a failure rolls the whole upgrade back.
struct SqliteMigration {
  int version = 0;
  Status (*apply)(SqliteSession& session) = nullptr;
};

// What a component (the device table, the queues ...) keeps in the file, for EnsureSchema.
struct SqliteSchema {
  // Its key in the schema_versions table ("devices").
  std::string_view component;
  // A table the component creates: present means the component has used this file before (at
  // version 1 when the file has no schema_versions row for it: rows began with version 2).
  std::string_view table;
  // CREATE ... IF NOT EXISTS statements for the current shape.
  std::string_view ddl;
  // Ascending by version; each runs when the component's recorded version is below it.
  std::vector<SqliteMigration> migrations;
};

// A prepared statement borrowed from the connection's cache. Move-only; it must not outlive the
// SqliteSession that prepared it. Bind* errors are remembered and returned by the next Step /
// Run, so that a statement can be bound in one chain and checked once.
class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();  // resets the statement so the cache can hand it out again

  // Parameters are 1-based, as in SQL ("?1").
  SqliteStatement& BindInt64(int index, std::int64_t value);
  SqliteStatement& BindOptionalInt64(int index, std::optional<std::int64_t> value);  // nullopt -> NULL
  SqliteStatement& BindText(int index, std::string_view value);
  SqliteStatement& BindBlob(int index, std::string_view bytes);
  SqliteStatement& BindNull(int index);

  // Advances to the next row: true when a row is available, false when the statement is done.
  // Errors: as translated above.
  Result<bool> Step();
  // Steps until done, for statements without result rows.
  Status Run();
  // Rewinds the statement and clears its bindings, so that it can run again.
  void Reset();

  // Columns are 0-based and valid only while Step() last returned true.
  std::int64_t ColumnInt64(int column) const;
  std::optional<std::int64_t> ColumnOptionalInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  friend class SqliteSession;
  SqliteStatement(sqlite3_stmt* statement, SqliteDatabase* database) : statement_(statement), database_(database) {}
  void Remember(int rc, int index);

  sqlite3_stmt* statement_;
  SqliteDatabase* database_;
  Status bind_error_;
};

// A BEGIN IMMEDIATE transaction. Rolls back when destroyed without a successful Commit().
// Move-only; must not outlive its SqliteSession.
class SqliteTransaction {
 public:
  SqliteTransaction(SqliteTransaction&& other) noexcept
      : session_(other.session_), savepoint_(std::move(other.savepoint_)), changes_(other.changes_) {
    other.session_ = nullptr;
  }
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  ~SqliteTransaction();

  // Errors: kUnavailable when the commit could not be written (the transaction is then rolled back).
  // Inside a unit of work this releases a savepoint: durable only when the unit commits.
  Status Commit();

 private:
  friend class SqliteSession;
  explicit SqliteTransaction(SqliteSession* session, std::string savepoint = {})
      : session_(session), savepoint_(std::move(savepoint)) {}
  SqliteSession* session_;
  std::string savepoint_;     // non-empty: nested in a unit of work
  std::int64_t changes_ = 0;  // the connection's total changes at BEGIN: a commit after more wrote
};

// Exclusive use of the connection by the calling thread, from SqliteDatabase::Lock() until it
// is destroyed. Statements and transactions made from it must be destroyed before it.
class SqliteSession {
 public:
  SqliteSession(SqliteSession&&) = default;
  SqliteSession& operator=(SqliteSession&&) = delete;
  SqliteSession(const SqliteSession&) = delete;
  SqliteSession& operator=(const SqliteSession&) = delete;
  ~SqliteSession() = default;

  // The cached prepared statement for `sql` (prepared on first use). A given SQL text may be in
  // use once at a time. Errors: kInternal for invalid SQL.
  Result<SqliteStatement> Prepare(std::string_view sql);

  // Runs `sql` (one or more statements without parameters; result rows are ignored).
  Status Exec(std::string_view sql);

  // Takes the write lock up front (waiting up to the busy timeout for another process), so
  // that a read-modify-write cannot fail half way with SQLITE_BUSY.
  Result<SqliteTransaction> BeginImmediate();

  // Rows changed by the last INSERT / UPDATE / DELETE on this connection.
  std::int64_t Changes() const;
  // The rowid of the last successful INSERT on this connection.
  std::int64_t LastInsertRowId() const;

 private:
  friend class SqliteDatabase;
  friend class SqliteTransaction;
  SqliteSession(SqliteDatabase* database, std::unique_lock<std::mutex> lock)
      : database_(database), lock_(std::move(lock)) {}

  SqliteDatabase* database_;
  std::unique_lock<std::mutex> lock_;
};

// Several operations of one thread as one transaction: one commit, one fsync. While it lives, the
// owning thread's Lock() calls re-enter the connection (other threads wait for it), their
// BeginImmediate() transactions become savepoints inside it and single statements join it.
// Commit() makes everything durable; destroyed without a successful Commit(), the unit rolls
// everything back. When SQLite aborts the transaction half-way (an I/O error, a full disk),
// every later statement of the unit fails with kUnavailable rather than run on its own, so that
// nothing after the failure is committed without what came before it. A unit holds the
// connection: keep it short and free of network calls. Units do not nest. Move-only.
class SqliteUnitOfWork {
 public:
  // kDurable: the commit is on disk when Commit() returns (synchronous=FULL, an fsync).
  // kAtomic: all or nothing, in order with every other commit, but a power loss (not a crash of
  // the process) may undo it and any kAtomic commit after it, until the next kDurable commit or
  // checkpoint syncs the log (synchronous=NORMAL for this commit). For a unit whose inputs are
  // removed in the same unit as its outputs are written (a worker round: its messages come back
  // when it is undone), never for accepting data from outside.
  enum class Mode { kDurable, kAtomic };

  SqliteUnitOfWork(SqliteUnitOfWork&& other) noexcept;
  SqliteUnitOfWork& operator=(SqliteUnitOfWork&&) = delete;
  SqliteUnitOfWork(const SqliteUnitOfWork&) = delete;
  SqliteUnitOfWork& operator=(const SqliteUnitOfWork&) = delete;
  ~SqliteUnitOfWork();

  // Errors: kUnavailable when the transaction could not be committed (it is then rolled back).
  Status Commit(Mode mode = Mode::kDurable);

 private:
  friend class SqliteDatabase;
  SqliteUnitOfWork(SqliteDatabase* database, std::unique_lock<std::mutex> lock)
      : database_(database), lock_(std::move(lock)) {}
  void End(bool commit, Status* status, Mode mode = Mode::kDurable);

  SqliteDatabase* database_;
  std::unique_lock<std::mutex> lock_;
};

// One SQLite connection, opened with journal_mode=WAL, synchronous=FULL (a committed write
// survives a crash or power loss), busy_timeout=5000 ms, foreign_keys=ON and a 32 MiB page cache
// (cache_size; SQLite's default 2 MiB spilled pages on every worker round at fleet scale). Thread-safe through
// Lock(). Shared (std::shared_ptr) by the stores and queues that live in the same file.
class SqliteDatabase {
 public:
  // Opens or creates the file. Errors: kUnavailable when the file cannot be opened or
  // locked; kFailedPrecondition when it cannot run in WAL mode; kInternal when it is not a
  // SQLite database.
  static Result<std::shared_ptr<SqliteDatabase>> Open(const std::string& path);

  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;
  ~SqliteDatabase();

  // Blocks until no other thread of this process uses the connection (returns at once on the
  // thread of a live unit of work).
  SqliteSession Lock();

  // Starts a unit of work (BEGIN IMMEDIATE) for the calling thread. Errors: kUnavailable when
  // the write lock cannot be had; kFailedPrecondition when this thread already has a unit.
  Result<SqliteUnitOfWork> BeginUnitOfWork();

  // In one transaction: runs `ddl` (CREATE ... IF NOT EXISTS statements) and records
  // kSqliteSchemaVersion in PRAGMA user_version. For tables that never changed shape. Errors:
  // kFailedPrecondition when the file carries a newer schema version (written by a newer
  // adapter), else as translated above.
  Status EnsureSchema(std::string_view ddl);

  // The same for a component whose tables have changed shape, in one transaction: the
  // component's own version is read from schema_versions (see SqliteSchema::table for files that
  // predate it; a component new to the file starts at kSqliteSchemaVersion), its migrations above
  // it run in order, then its DDL; the component's row and user_version are set to
  // kSqliteSchemaVersion. The version is kept per component, not only in the file-wide
  // user_version, because components open the file one after the other in any order: the first
  // to open an old file raises user_version, and the others must still upgrade their tables.
  // Errors: as EnsureSchema(ddl), and those of the migrations.
  Status EnsureSchema(const SqliteSchema& schema);

  const std::string& Path() const { return path_; }

  // Disk trouble (header comment): why the store cannot be written ("disk full: ... (12 KiB free
  // on /var/lib/pwrcell)", "read-only: ...", "I/O error: ..."), or empty while it can. Set by the
  // last statement that failed for disk trouble; cleared by the next commit that reaches the disk
  // or a successful ProbeWrite(). Thread-safe, never blocks on the connection.
  std::string Trouble() const;
  bool InTrouble() const { return in_trouble_.load(std::memory_order_acquire); }

  // Called on every statement that fails for disk trouble, with the reason's label: "disk_full",
  // "read_only" or "io_error" (for a metric). Set it once, before the connection is shared.
  void SetTroubleHook(std::function<void(std::string_view reason)> hook) { trouble_hook_ = std::move(hook); }

  // Whether the store can be written: one small transaction that rewrites the file's header page
  // (PRAGMA user_version, unchanged) and commits it with an fsync. OK clears the trouble; an error
  // is the write's (kUnavailable for disk trouble, which it records). Waits for the connection.
  Status ProbeWrite();

 private:
  friend class SqliteSession;
  friend class SqliteStatement;
  friend class SqliteTransaction;
  friend class SqliteUnitOfWork;
  SqliteDatabase(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // kUnavailable when a unit of work is live but SQLite has ended its transaction.
  Status CheckUnitAlive() const;
  // The one translation of a SQLite result code of this connection into a Status; records disk
  // trouble.
  Status Translate(int rc, std::string_view context);
  // A commit reached the disk: the trouble, if any, is over.
  void NoteCommitted();

  std::atomic<bool> in_trouble_{false};
  mutable std::mutex trouble_mutex_;
  std::string trouble_;  // guarded by trouble_mutex_
  std::function<void(std::string_view)> trouble_hook_;

  std::mutex mutex_;
  std::atomic<std::thread::id> unit_owner_{};  // the thread of the live unit of work, if any
  bool unit_active_ = false;                   // guarded by mutex_
  std::uint64_t savepoints_ = 0;               // guarded by mutex_
  std::int64_t unit_changes_ = 0;              // total changes when the live unit began; mutex_
  sqlite3* db_;
  const std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // guarded by mutex_
};

}  // namespace pwrcell::adapters
