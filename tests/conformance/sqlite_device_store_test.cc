// What the SQLite device table promises beyond the port: its indexed look-ups use their indexes
// (no scan of the table), and a file written by the previous schema (version 1) still opens, with
// every record found by its site and its inverter RCP number, whichever component opens it first.
#include "adapters/sqlite/sqlite_device_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "backends.h"

namespace pwrcell::conformance {
namespace {

using adapters::SqliteDatabase;
using adapters::SqliteDeviceStore;

// The rows of `sql` (one text column each), or a test failure.
std::vector<std::string> Texts(SqliteDatabase& database, const std::string& sql, int column = 0) {
  auto session = database.Lock();
  auto query = session.Prepare(sql);
  EXPECT_TRUE(query.ok()) << sql << ": " << query.status().ToString();
  std::vector<std::string> rows;
  if (!query.ok()) return rows;
  while (true) {
    auto row = query->Step();
    EXPECT_TRUE(row.ok()) << sql << ": " << row.status().ToString();
    if (!row.ok() || !*row) break;
    rows.push_back(query->ColumnText(column));
  }
  return rows;
}

std::vector<std::string> QueryPlan(SqliteDatabase& database, std::string_view query) {
  return Texts(database, "EXPLAIN QUERY PLAN " + std::string(query), 3);  // (id, parent, notused, detail)
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

std::vector<std::string> Columns(SqliteDatabase& database, const std::string& table) {
  return Texts(database, "SELECT name FROM pragma_table_info('" + table + "')");
}

bool Contains(const std::vector<std::string>& values, const std::string& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

class SqliteDeviceTable : public ::testing::Test {
 protected:
  std::string Path() const { return (dir_.Path() / "adapter.db").string(); }

  std::shared_ptr<SqliteDatabase> OpenDatabase() {
    auto database = SqliteDatabase::Open(Path());
    EXPECT_TRUE(database.ok()) << database.status().ToString();
    return database.ok() ? *database : nullptr;
  }

  // A file exactly as the adapter of schema version 1 left it: its device table, index and
  // queue table, user_version 1, three records in the JSON of that version (one on a site with
  // its inverter, one with neither, and one sharing the site).
  void WriteVersion1File() {
    auto database = OpenDatabase();
    ASSERT_NE(database, nullptr);
    auto session = database->Lock();
    ASSERT_TRUE(session
                    .Exec(R"sql(
CREATE TABLE devices (
  remote_id TEXT PRIMARY KEY,
  inverter_rcpn TEXT,
  version INTEGER NOT NULL,
  record TEXT NOT NULL,
  updated_at INTEGER
);
CREATE INDEX devices_by_inverter_rcpn ON devices (inverter_rcpn, remote_id);
CREATE TABLE queue_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB NOT NULL,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  dead_at INTEGER
);
CREATE INDEX queue_messages_ready ON queue_messages (queue, dead, visible_at, id);
INSERT INTO queue_messages (queue, body, sent_at, visible_at) VALUES ('ces', x'7b7d', 1, 1);
INSERT INTO devices VALUES ('sys-b', '000100007020', 3,
  '{"remote_id":"sys-b","concerto_asset_id":"asset-b","name":"B","is_simulated":false,"rated_power_kw":7.6,'
  || '"site":{"site_id":"site-1","remote_id":"ces-site-1","name":"Smith"},'
  || '"inverter":{"asset_id":"asset-b-inv","remote_id":"000100007020"},"batteries":[],"photovoltaics":[],'
  || '"site_meter":null,"inverter_rcpn":"000100007020","coupling":"DC","metadata":null,'
  || '"metadata_fetched_at":null,"commissioning":{"state":"DONE","reason":""},'
  || '"last_heard_at":"2026-11-22T10:15:00Z","inverter_state":28688,"sys_mode":2,"system_status":"SUCCESS",'
  || '"system_status_at":null,"remote_state":"ERROR","remote_state_reason":"inverter state 0x7010",'
  || '"registered_at":"2026-11-20T08:00:00Z","updated_at":"2026-11-22T10:15:01Z","version":3}',
  1763806501000);
INSERT INTO devices VALUES ('sys-a', NULL, 1,
  '{"remote_id":"sys-a","concerto_asset_id":"asset-a","name":"A","inverter_rcpn":"","site":null,"inverter":null,'
  || '"version":1}', NULL);
INSERT INTO devices VALUES ('sys-c', '000100007030', 2,
  '{"remote_id":"sys-c","concerto_asset_id":"asset-c","name":"C","inverter_rcpn":"000100007030",'
  || '"site":{"site_id":"site-1","remote_id":"ces-site-1","name":"Smith"},"version":2}', NULL);
PRAGMA user_version = 1;
)sql")
                    .ok());
  }

  // What a version-1 file must give once opened by this adapter.
  void ExpectMigrated(ports::DeviceStore& store) {
    auto b = store.Get("sys-b");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_TRUE(b->has_value());
    EXPECT_EQ((*b)->version, 3);
    EXPECT_EQ((*b)->name, "B");
    // The single-inverter fields of version 1 read as the lists they became.
    EXPECT_EQ((*b)->inverter_rcpns, (std::vector<std::string>{"000100007020"}));
    EXPECT_EQ((*b)->inverters, (std::vector<domain::AssetRef>{{"asset-b-inv", "000100007020"}}));
    ASSERT_EQ((*b)->inverter_readings.size(), 1U);
    EXPECT_EQ((*b)->inverter_readings.front().rcpn, "000100007020");
    EXPECT_EQ((*b)->InverterState(), std::optional<std::uint32_t>(28688));
    EXPECT_EQ((*b)->SysMode(), std::optional<int>(2));
    ASSERT_TRUE((*b)->site.has_value());
    EXPECT_EQ((*b)->site->site_id, "site-1");

    auto site = store.ListBySite("site-1");
    ASSERT_TRUE(site.ok()) << site.status().ToString();
    std::vector<std::string> ids;
    for (const auto& d : *site) ids.push_back(d.remote_id);
    EXPECT_EQ(ids, (std::vector<std::string>{"sys-b", "sys-c"}));

    auto found = store.FindByInverterRcpn("000100007030");
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->remote_id, "sys-c");
    found = store.FindByInverterRcpn("000100007020");
    ASSERT_TRUE(found.ok() && found->has_value());
    EXPECT_EQ((*found)->remote_id, "sys-b");

    // And it keeps working: a record moved to another site and given another inverter.
    domain::DeviceRecord moved = **b;
    moved.site = domain::SiteRef{"site-2", "ces-site-2", "Jones"};
    moved.inverter_rcpns = {"000100007020", "000100007099"};  // a second inverter
    auto stored = store.Put(moved);
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    EXPECT_EQ(stored->version, 4);
    auto listed = store.ListBySite("site-2");
    ASSERT_TRUE(listed.ok());
    ASSERT_EQ(listed->size(), 1U);
    EXPECT_EQ(listed->front(), *stored);
    for (const char* rcpn : {"000100007020", "000100007099"}) {
      found = store.FindByInverterRcpn(rcpn);
      ASSERT_TRUE(found.ok() && found->has_value()) << rcpn;
      EXPECT_EQ(**found, *stored);
    }
  }

  // The device table's shape of version 2 (unchanged since), in a file of the current version.
  void ExpectVersion2Shape(SqliteDatabase& database) {
    const std::vector<std::string> current{std::to_string(adapters::kSqliteSchemaVersion)};
    EXPECT_EQ(Texts(database, "PRAGMA user_version"), current);
    EXPECT_EQ(Texts(database, "SELECT version FROM schema_versions WHERE component = 'devices'"), current);
    const auto columns = Columns(database, "devices");
    EXPECT_TRUE(Contains(columns, "site_id"));
    EXPECT_FALSE(Contains(columns, "inverter_rcpn")) << "the old column is dropped";
    EXPECT_EQ(Columns(database, "device_inverters"), (std::vector<std::string>{"rcpn", "remote_id"}));
    const auto indexes = Texts(database, "SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name");
    EXPECT_TRUE(Contains(indexes, "devices_by_site"));
    EXPECT_TRUE(Contains(indexes, "device_inverters_by_device"));
    EXPECT_FALSE(Contains(indexes, "devices_by_inverter_rcpn"));
  }

  TempDir dir_;
};

TEST_F(SqliteDeviceTable, TheIndexedLookUpsUseTheirIndexes) {
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto store = SqliteDeviceStore::Create(database);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // A few rows and fresh statistics, so that the planner chooses as it would on a real table.
  for (int i = 0; i < 50; ++i) {
    domain::DeviceRecord d;
    d.remote_id = "sys-" + std::to_string(i);
    d.inverter_rcpns = {"rcpn-" + std::to_string(i), "rcpn-" + std::to_string(i) + "-b"};
    d.site = domain::SiteRef{"site-" + std::to_string(i % 7), "", ""};
    ASSERT_TRUE((*store)->Put(d).ok());
  }
  ASSERT_TRUE(database->Lock().Exec("ANALYZE").ok());

  const auto by_site = QueryPlan(*database, SqliteDeviceStore::kListBySiteQuery);
  ASSERT_FALSE(by_site.empty());
  EXPECT_NE(by_site.front().find("SEARCH devices USING INDEX devices_by_site (site_id=?)"), std::string::npos)
      << Joined(by_site);
  for (const auto& line : by_site) {
    EXPECT_EQ(line.find("SCAN"), std::string::npos) << Joined(by_site);
    EXPECT_EQ(line.find("TEMP B-TREE"), std::string::npos) << "the index gives remote_id order\n" << Joined(by_site);
  }

  const auto by_rcpn = QueryPlan(*database, SqliteDeviceStore::kFindByInverterRcpnQuery);
  ASSERT_GE(by_rcpn.size(), 2U) << Joined(by_rcpn);
  EXPECT_NE(by_rcpn[0].find("SEARCH i USING PRIMARY KEY (rcpn=?)"), std::string::npos) << Joined(by_rcpn);
  EXPECT_NE(by_rcpn[1].find("SEARCH d USING INDEX sqlite_autoindex_devices_1 (remote_id=?)"), std::string::npos)
      << Joined(by_rcpn);
  for (const auto& line : by_rcpn) {
    EXPECT_EQ(line.find("SCAN"), std::string::npos) << Joined(by_rcpn);
    EXPECT_EQ(line.find("TEMP B-TREE"), std::string::npos) << Joined(by_rcpn);
  }
}

TEST_F(SqliteDeviceTable, ANewFileHasTheCurrentShape) {
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  ASSERT_TRUE(SqliteDeviceStore::Create(database).ok());
  ExpectVersion2Shape(*database);
}

TEST_F(SqliteDeviceTable, AVersion1FileIsMigratedWhenTheStoreOpensIt) {
  WriteVersion1File();
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto store = SqliteDeviceStore::Create(database);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectVersion2Shape(*database);
  ExpectMigrated(**store);
  EXPECT_EQ(Texts(*database, "SELECT site_id FROM devices WHERE remote_id = 'sys-a'"), (std::vector<std::string>{""}))
      << "no site: NULL";
  EXPECT_EQ(Texts(*database, "SELECT rcpn FROM device_inverters WHERE remote_id = 'sys-a'"), std::vector<std::string>{})
      << "no rcpn: no row";
}

TEST_F(SqliteDeviceTable, AVersion3FileKeepsItsHotFieldsInColumnsOnceMigrated) {
  WriteVersion1File();  // migrated through version 2 and 3 shapes to the current one
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto store = SqliteDeviceStore::Create(database);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const auto columns = Columns(*database, "devices");
  for (const char* column : {"last_heard_at", "is_simulated", "remote_state", "evaluated_state", "remote_state_cause",
                             "system_status", "commissioning_state"}) {
    EXPECT_TRUE(Contains(columns, column)) << column;
  }
  // 2026-11-22T10:15:00Z, moved out of the JSON with the reading of its inverter.
  EXPECT_EQ(Texts(*database, "SELECT last_heard_at FROM devices WHERE remote_id = 'sys-b'"),
            (std::vector<std::string>{"1795342500000"}));
  EXPECT_EQ(Texts(*database,
                  "SELECT json_extract(record, '$.last_heard_at') IS NULL FROM devices WHERE remote_id = "
                  "'sys-b'"),
            (std::vector<std::string>{"1"}));
  EXPECT_EQ(Texts(*database, "SELECT rcpn || ' ' || state || ' ' || sys_mode FROM device_readings"),
            (std::vector<std::string>{"000100007020 28688 2"}));
  EXPECT_EQ(Texts(*database,
                  "SELECT remote_state || ' ' || system_status || ' ' || commissioning_state FROM devices "
                  "WHERE remote_id = 'sys-b'"),
            (std::vector<std::string>{"ERROR SUCCESS DONE"}));
  // RecordHeard writes the columns, the JSON stays as it was.
  const auto json_before = Texts(*database, "SELECT record FROM devices WHERE remote_id = 'sys-b'");
  auto changed =
      (*store)->RecordHeard("sys-b", FromUnixMillis(1'795'342'800'000),
                            domain::InverterReading{"000100007020", 2080, 2, FromUnixMillis(1'795'342'800'000)});
  ASSERT_TRUE(changed.ok() && *changed);
  EXPECT_EQ(Texts(*database, "SELECT record FROM devices WHERE remote_id = 'sys-b'"), json_before);
  auto b = (*store)->Get("sys-b");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->last_heard_at, FromUnixMillis(1'795'342'800'000));
  EXPECT_EQ((*b)->InverterState(), std::optional<std::uint32_t>(2080));
  EXPECT_EQ((*b)->version, 3);
}

TEST_F(SqliteDeviceTable, AVersion1FileIsMigratedAlsoWhenAQueueOpensItFirst) {
  WriteVersion1File();
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  adapters::FakeClock clock;
  // The queue raises the file's user_version to the current one; the device table must still be migrated.
  auto queue = adapters::SqliteQueue::Create(database, "ces", clock, 5);
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  EXPECT_EQ(Texts(*database, "PRAGMA user_version"),
            (std::vector<std::string>{std::to_string(adapters::kSqliteSchemaVersion)}));
  auto store = SqliteDeviceStore::Create(database);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectVersion2Shape(*database);
  ExpectMigrated(**store);
  auto message = (*queue)->Receive(10, std::chrono::seconds(30));
  ASSERT_TRUE(message.ok()) << message.status().ToString();
  EXPECT_EQ(message->size(), 1U) << "the queue's message survived";
}

TEST_F(SqliteDeviceTable, AMigratedFileOpensAgainWithoutMigratingTwice) {
  WriteVersion1File();
  {
    auto store = SqliteDeviceStore::Open(Path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  // Running the migration again would fail (the column exists) or re-derive the index rows; a
  // row written behind the store's back shows that it does not run.
  {
    auto database = OpenDatabase();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(database->Lock().Exec("UPDATE devices SET site_id = 'hand-made' WHERE remote_id = 'sys-c'").ok());
  }
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto store = SqliteDeviceStore::Create(database);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectVersion2Shape(*database);
  auto listed = (*store)->ListBySite("hand-made");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1U);
}

TEST_F(SqliteDeviceTable, AFailedMigrationLeavesTheVersion1FileAsItWas) {
  WriteVersion1File();
  {
    // A record whose JSON the migration reads but whose key cannot be written: a device_inverters
    // table of another shape (a damaged or foreign file) makes the backfill fail.
    auto database = OpenDatabase();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(database->Lock().Exec("CREATE TABLE device_inverters (rcpn TEXT NOT NULL)").ok());
  }
  auto store = SqliteDeviceStore::Open(Path());
  ASSERT_FALSE(store.ok());
  EXPECT_FALSE(store.status().IsRetryable()) << store.status().ToString();
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(Texts(*database, "PRAGMA user_version"), (std::vector<std::string>{"1"}));
  const auto columns = Columns(*database, "devices");
  EXPECT_TRUE(Contains(columns, "inverter_rcpn"));
  EXPECT_FALSE(Contains(columns, "site_id")) << "rolled back as a whole";
}

}  // namespace
}  // namespace pwrcell::conformance
