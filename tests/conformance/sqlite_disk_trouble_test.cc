// Disk trouble on the SQLite store (sqlite_database.h): a full disk, a read-only file system and an
// I/O error, injected by a VFS that wraps the default one and fails writes on demand (SQLite sees
// exactly what the file system would answer). Each must become kUnavailable (ingest answers 503
// with Retry-After, the workers retry, nothing is dead-lettered for it), roll the failed write back
// whole, mark the store in trouble with a reason and count it, and clear once writes succeed.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "backends.h"

namespace pwrcell::conformance {
namespace {

using std::chrono::seconds;

// The failure the faulty VFS answers to every write, sync and truncate while set (0: none).
std::atomic<int> g_write_error{0};
sqlite3_vfs* g_real = nullptr;

// A file of the faulty VFS: the real file behind it, after our io methods.
struct FaultyFile {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* Real(sqlite3_file* file) {
  return reinterpret_cast<FaultyFile*>(file)->real;
}

int Fail() {
  return g_write_error.load();
}

int FaultyClose(sqlite3_file* f) {
  int rc = Real(f)->pMethods->xClose(Real(f));
  sqlite3_free(Real(f));
  return rc;
}
int FaultyRead(sqlite3_file* f, void* buffer, int amount, sqlite3_int64 offset) {
  return Real(f)->pMethods->xRead(Real(f), buffer, amount, offset);
}
int FaultyWrite(sqlite3_file* f, const void* buffer, int amount, sqlite3_int64 offset) {
  if (int rc = Fail(); rc != 0) return rc;
  return Real(f)->pMethods->xWrite(Real(f), buffer, amount, offset);
}
int FaultyTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (int rc = Fail(); rc != 0) return rc;
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FaultySync(sqlite3_file* f, int flags) {
  if (int rc = Fail(); rc != 0) return rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FaultyFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int FaultyLock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xLock(Real(f), level);
}
int FaultyUnlock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xUnlock(Real(f), level);
}
int FaultyCheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FaultyFileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int FaultySectorSize(sqlite3_file* f) {
  return Real(f)->pMethods->xSectorSize(Real(f));
}
int FaultyDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int FaultyShmMap(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), page, size, extend, out);
}
int FaultyShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void FaultyShmBarrier(sqlite3_file* f) {
  Real(f)->pMethods->xShmBarrier(Real(f));
}
int FaultyShmUnmap(sqlite3_file* f, int remove) {
  return Real(f)->pMethods->xShmUnmap(Real(f), remove);
}

const sqlite3_io_methods kFaultyMethods = {
    2,
    FaultyClose,
    FaultyRead,
    FaultyWrite,
    FaultyTruncate,
    FaultySync,
    FaultyFileSize,
    FaultyLock,
    FaultyUnlock,
    FaultyCheckReservedLock,
    FaultyFileControl,
    FaultySectorSize,
    FaultyDeviceCharacteristics,
    FaultyShmMap,
    FaultyShmLock,
    FaultyShmBarrier,
    FaultyShmUnmap,
    nullptr,
    nullptr,
};

int FaultyOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* faulty = reinterpret_cast<FaultyFile*>(file);
  faulty->base.pMethods = nullptr;
  faulty->real = static_cast<sqlite3_file*>(sqlite3_malloc(g_real->szOsFile));
  if (faulty->real == nullptr) return SQLITE_NOMEM;
  std::memset(faulty->real, 0, static_cast<std::size_t>(g_real->szOsFile));
  const int rc = g_real->xOpen(g_real, name, faulty->real, flags, out_flags);
  if (rc != SQLITE_OK || faulty->real->pMethods == nullptr) {
    sqlite3_free(faulty->real);
    return rc;
  }
  faulty->base.pMethods = &kFaultyMethods;
  return SQLITE_OK;
}
int FaultyDelete(sqlite3_vfs*, const char* name, int sync) {
  return g_real->xDelete(g_real, name, sync);
}
int FaultyAccess(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int FaultyFullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
int FaultyRandomness(sqlite3_vfs*, int n, char* out) {
  return g_real->xRandomness(g_real, n, out);
}
int FaultySleep(sqlite3_vfs*, int micros) {
  return g_real->xSleep(g_real, micros);
}
int FaultyCurrentTime(sqlite3_vfs*, double* out) {
  return g_real->xCurrentTime(g_real, out);
}
int FaultyGetLastError(sqlite3_vfs*, int n, char* out) {
  return g_real->xGetLastError(g_real, n, out);
}
int FaultyCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return g_real->xCurrentTimeInt64(g_real, out);
}

// Registers the faulty VFS as the default for the test's lifetime (SqliteDatabase::Open uses the
// default), restoring the real one after.
class FaultyVfs {
 public:
  FaultyVfs() {
    g_real = sqlite3_vfs_find(nullptr);
    vfs_ = *g_real;
    vfs_.szOsFile = sizeof(FaultyFile);
    vfs_.zName = "pwrcell-faulty";
    vfs_.pAppData = nullptr;
    vfs_.xOpen = FaultyOpen;
    vfs_.xDelete = FaultyDelete;
    vfs_.xAccess = FaultyAccess;
    vfs_.xFullPathname = FaultyFullPathname;
    vfs_.xRandomness = FaultyRandomness;
    vfs_.xSleep = FaultySleep;
    vfs_.xCurrentTime = FaultyCurrentTime;
    vfs_.xGetLastError = FaultyGetLastError;
    vfs_.xCurrentTimeInt64 = FaultyCurrentTimeInt64;
    vfs_.iVersion = 2;  // no system-call overrides
    sqlite3_vfs_register(&vfs_, 1);
  }
  ~FaultyVfs() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(g_real, 1);
    g_write_error = 0;
  }
  FaultyVfs(const FaultyVfs&) = delete;
  FaultyVfs& operator=(const FaultyVfs&) = delete;

 private:
  sqlite3_vfs vfs_{};
};

struct Case {
  const char* name;
  int code;            // what the VFS answers a write
  const char* label;   // the trouble hook's reason
  const char* prefix;  // the start of Trouble()
};

// Names the case in test output (CTest shows the parameter).
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class SqliteDiskTrouble : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    auto database = adapters::SqliteDatabase::Open((dir_.Path() / "adapter.db").string());
    ASSERT_TRUE(database.ok()) << database.status().ToString();
    database_ = *database;
    database_->SetTroubleHook([this](std::string_view reason) { reasons_.emplace_back(reason); });
    auto queue = adapters::SqliteQueue::Create(database_, "ingest", clock_, 5);
    ASSERT_TRUE(queue.ok()) << queue.status().ToString();
    queue_ = std::move(*queue);
  }

  std::size_t Visible() {
    auto stats = queue_->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok() ? stats->visible : 0;
  }

  FaultyVfs vfs_;  // before the database: it must be the default when the file opens
  TempDir dir_;
  adapters::FakeClock clock_{FromUnixMillis(1'700'000'000'000)};
  std::shared_ptr<adapters::SqliteDatabase> database_;
  std::unique_ptr<adapters::SqliteQueue> queue_;
  std::vector<std::string> reasons_;
};

TEST_P(SqliteDiskTrouble, FailedWriteIsUnavailableRolledBackMarkedAndClearedByTheNextWrite) {
  const Case& c = GetParam();
  ASSERT_TRUE(queue_->SendBatch({"a", "b"}).ok());
  EXPECT_FALSE(database_->InTrouble());

  g_write_error = c.code;
  auto sent = queue_->SendBatch({"c", "d", "e"});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), StatusCode::kUnavailable) << sent.status().ToString();
  EXPECT_TRUE(sent.status().IsRetryable());
  EXPECT_TRUE(database_->InTrouble());
  EXPECT_EQ(database_->Trouble().rfind(c.prefix, 0), 0u) << database_->Trouble();
  ASSERT_FALSE(reasons_.empty());
  EXPECT_EQ(reasons_.front(), c.label);

  // A unit of work (serve's group commit of ingested records) fails whole too.
  {
    auto unit = database_->BeginUnitOfWork();
    if (unit.ok()) {
      Status in_unit = queue_->SendBatch({"f"}).status();
      Status committed = in_unit.ok() ? unit->Commit() : in_unit;
      EXPECT_EQ(committed.code(), StatusCode::kUnavailable) << committed.ToString();
    } else {
      EXPECT_EQ(unit.status().code(), StatusCode::kUnavailable) << unit.status().ToString();
    }
  }
  auto probe = database_->ProbeWrite();
  EXPECT_EQ(probe.code(), StatusCode::kUnavailable) << probe.ToString();
  EXPECT_TRUE(database_->InTrouble());

  // Reads go on; nothing of the failed writes is there.
  g_write_error = 0;
  EXPECT_EQ(Visible(), 2u);
  EXPECT_TRUE(database_->InTrouble()) << "a read clears nothing";

  // The probe (serve's periodic check) clears it once the disk takes writes again.
  ASSERT_TRUE(database_->ProbeWrite().ok());
  EXPECT_FALSE(database_->InTrouble());
  EXPECT_EQ(database_->Trouble(), "");

  // So does the next write that commits.
  g_write_error = c.code;
  EXPECT_FALSE(queue_->Send("g").ok());
  EXPECT_TRUE(database_->InTrouble());
  g_write_error = 0;
  ASSERT_TRUE(queue_->SendBatch({"c", "d", "e"}).ok());
  EXPECT_FALSE(database_->InTrouble());
  EXPECT_EQ(Visible(), 5u);
}

INSTANTIATE_TEST_SUITE_P(Faults, SqliteDiskTrouble,
                         ::testing::Values(Case{"full", SQLITE_FULL, "disk_full", "disk full: "},
                                           Case{"readonly", SQLITE_READONLY, "read_only", "read-only: "},
                                           Case{"ioerr_write", SQLITE_IOERR_WRITE, "io_error", "I/O error: "},
                                           Case{"ioerr_fsync", SQLITE_IOERR_FSYNC, "io_error", "I/O error: "}),
                         [](const ::testing::TestParamInfo<Case>& param) { return std::string(param.param.name); });

TEST(SqliteDiskTroubleCodes, BusyIsNoDiskTrouble) {
  // Another process holding the write lock past the busy timeout is no disk trouble: it is retried,
  // but the store is not marked (readyz stays ready, the workers keep working).
  TempDir dir;
  const std::string path = (dir.Path() / "adapter.db").string();
  auto database = adapters::SqliteDatabase::Open(path);
  ASSERT_TRUE(database.ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto unit = (*database)->BeginUnitOfWork();  // waits the 5 s busy timeout
  ASSERT_FALSE(unit.ok());
  EXPECT_EQ(unit.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE((*database)->InTrouble()) << (*database)->Trouble();
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

}  // namespace
}  // namespace pwrcell::conformance
