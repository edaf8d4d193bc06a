// The device table (SPEC section 2) in one DynamoDB table: the DeviceStore of `serve` on AWS.
//
// Keys: pk (S, partition) and sk (S, sort). One table, four kinds of item:
//
//   record  pk "d#<remote_id>"  sk "rec"   rid (S), lp = "d" (S), ver (N), inc (N: the incarnation,
//           random, fixed at creation), rec (S: the record as JSON, domain/device_json.h, without
//           its hot fields), sim (BOOL), cs (S: commissioning state), and when set rs (S:
//           remote_state), site (S: site->site_id), rcpns (L of S: its distinct non-empty RCP numbers)
//   hot     pk "d#<remote_id>"  sk "hot"   inc (N), hv (N: raised by every write of the item), lh (N:
//           last_heard_at, Unix ms), rd (S: the inverter readings, a JSON array of
//           [rcpn, state, sys_mode, at_ms] in the order first stored)
//   by RCP  pk "r#<rcpn>"     sk "<remote_id>"   inc (N), ver (N: the version that wrote it)
//   by site pk "s#<site_id>"  sk "<remote_id>"   inc (N), ver (N)
//
//   GSI "by_remote_id": partition lp, sort rid, projection INCLUDE ver, sim, rs, cs: every record in
//   remote_id order (ListPage, ListKeys, Count, Tally, ListUnsettled).
//
// Why this shape:
// - The hot fields (last_heard_at, inverter_readings) have their own small item, so that
//   RecordHeard (once per telemetry record) writes ~200 bytes (1 WCU) instead of the whole record
//   (DynamoDB bills a write by the larger of the old and new item), never changes the version and
//   never touches the GSI. Reads put them back into the record (readings in inverter_rcpns order).
//   The item exists once something was heard; one of another incarnation (left by a Remove that
//   stopped half-way) counts as none.
// - The RCP-number and site indexes are items of the base table read with ConsistentRead, not GSIs:
//   DynamoDB refuses ConsistentRead on a GSI, so telemetry arriving just after a system's
//   registration or inverter change could miss it, or match the system that had the number
//   before; the site aggregation must see the state just written. They are hints, checked against
//   the record (its rcpns / site attribute, read consistently): the record item is the only truth.
//   A Put writes the index items of the keys it adds before the record and deletes those of the
//   keys it drops after it, so a consistent reader never meets a record without its index items;
//   a hint left behind by a write that failed half-way is skipped by readers and overwritten by the
//   record's next write of that key. Deletions are conditioned on inc and ver, so that a later
//   write (or a record created again under the id) that named the key again keeps its item.
// - No TransactWriteItems: every write is single-item with a condition (the record's version, the
//   hot item's hv), so no transaction's 100-item limit or 2x write cost applies, and no write
//   needs more than the record's own condition to decide. The price is in the reads: an index
//   look-up reads the record it points to (FindKeyByInverterRcpn is 2 calls, not 1). (moto, the
//   tests' stand-in, also makes transactions unusable: it copies the whole table on every
//   TransactWriteItems and restores that copy when one is canceled, undoing other writes.)
// - The listing needs one sort order over every record, which DynamoDB only gives within one
//   partition key: the GSI puts every record under lp = "d". Its entries are small and written
//   only by Put and Remove (RecordHeard does not touch the record item). Limit: one GSI partition
//   value takes about 1,000 writes/s; beyond that many Puts per second, shard lp ("d0".."dN")
//   and merge the N ordered queries.
//
// Put: reads the device (ReadRaw), checks the version, writes the index items it gains, then the
// record with `ver = <read>` (create: attribute_not_exists), then merges the hot fields
// (ports/device_store.h, "Hot fields": the hot item is rewritten, conditioned on its hv, only when
// the record brings a newer last_heard_at or reading or drops the reading of an inverter it no
// longer lists; a RecordHeard in between makes it merge again), then deletes the index items it
// dropped. A failed record condition is read again: kAborted when the version moved, another
// attempt when only a transient race failed it. A Put whose record write succeeded but whose hot
// merge then failed (network) returns the error: the record is written, the hot item is merged
// again by the next Put.
//
// Consistency: Get, FindByInverterRcpn, FindKeyByInverterRcpn, ListBySite, List, the records of
// ListPage and ListUnsettled, and every write's own reads are strongly consistent. Which records a
// page visits comes from the GSI, which DynamoDB updates asynchronously (usually within a second):
// ListPage, ListKeys, Count, Tally and ListUnsettled may miss a record created in the last moment
// or still list one just removed (ListPage and ListUnsettled skip a record that is gone and check
// the filter against the record they read, and fill the page from further on); ListKeys gives the
// version the GSI holds (a caller that writes re-reads and writes at the version it read).
//
// DynamoDB calls per method (n = records returned or visited, k = RCP numbers gained or dropped):
//   Get                      1 Query
//   FindKeyByInverterRcpn    1 Query (index) + 1 BatchGetItem (the candidates' records)
//   FindByInverterRcpn       1 Query (index) + 1 Query (the record)
//   RecordHeard              1 Query, + 1 conditional PutItem when something changed (each
//                            concurrent writer that comes first costs one more round)
//   RecordHeardBatch         ceil(devices/50) BatchGetItem + 1 conditional PutItem per device that
//                            changed (a device's updates merge into one write)
//   Put                      1 Query + 1 PutItem (+ k PutItem / DeleteItem of index items when its
//                            keys change, + 1 PutItem of the hot item when the merge changes it)
//   Remove                   1 Query + 1 DeleteItem (+ 1 hot item + 1 per index item, best effort)
//   ListKeys                 >= 1 Query of the GSI (more when a filter skips items)
//   ListPage                 ListKeys' queries + ceil(2n/100) BatchGetItem
//   ListBySite               1 Query (+1 per MB) + ceil(2n/100) BatchGetItem
//   ListUnsettled            GSI queries + BatchGetItem for every record visited until `limit`
//                            unsettled ones are found: its cost grows with the records between
//                            `after_remote_id` and the last one returned, up to the whole table
//                            when few are unsettled (the rule reads the hot fields, which are not
//                            in the GSI, so the store cannot skip settled records unread)
//   Count, Tally             Queries over the whole GSI (1 per MB of index): DynamoDB has no
//                            aggregate, so their cost grows with the table
//   List                     a consistent Scan of the whole table (1 per MB), for exports
//
// DynamoDB limits enforced here rather than letting AWS refuse a write half-way or truncate:
// - An item is at most 400 KB (names and values, DynamoDB's item-size rules): a record whose item
//   would be larger is kInvalidArgument naming its size, and nothing is written.
// - remote_id at most 1,024 bytes (a sort key), an RCP number or site id at most 2,046 (a
//   partition key with its prefix): kInvalidArgument beyond. At most kMaxInverterRcpns distinct
//   RCP numbers per record (bounds the calls of one Put): kInvalidArgument beyond.
// RecordHeardBatch is not atomic here (DynamoDB has no conditional batch write, and a transaction
// fails whole on one absent record): each device's updates are one conditional write. Every update
// is idempotent (raise / newer-wins), so running a batch again after a failure part-way is harmless.
//
// Errors: those of ports::DeviceStore. The AWS client's table maps DynamoDB's errors (throttling
// -> kResourceExhausted, 5xx -> kUnavailable, both retried there first; access and signature
// errors permanent), messages naming the table; a stored item that does not decode is kInternal;
// kAborted also when a write lost 10 races in a row. No AWS type or JSON leaves this class.
//
// Thread-safe: no mutable state but a random generator behind a mutex; the client is shared.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "ports/device_store.h"

namespace pwrcell::adapters::aws {

namespace dynamodb_internal {
struct HotFields;  // what a device's hot item holds (dynamodb_device_store.cc)
}  // namespace dynamodb_internal

class DynamoDbDeviceStore final : public ports::DeviceStore {
 public:
  static constexpr std::string_view kListingIndex = "by_remote_id";
  // Distinct non-empty RCP numbers per record (real systems have 1 to 4 inverters).
  static constexpr std::size_t kMaxInverterRcpns = 100;
  static constexpr std::size_t kMaxItemBytes = 400 * 1024;

  // Creates `table` (on-demand capacity) with the keys and the GSI above and waits until it is
  // ACTIVE. An existing table with that schema is fine; one with another schema is
  // kFailedPrecondition naming what differs. Other errors: the client's (kUnauthenticated,
  // kPermissionDenied, kUnavailable, ...), with the table's name.
  static Status CreateTable(const AwsClient& client, const std::string& table);

  // The store on an existing table, checked with DescribeTable so that `serve` reports a wrong
  // resource at start: kNotFound (the table's name and the AWS error) when it does not exist,
  // kFailedPrecondition when its schema is not the one above, kUnavailable while it is being
  // created; the client's errors otherwise.
  static Result<std::unique_ptr<DynamoDbDeviceStore>> Open(std::shared_ptr<AwsClient> client, std::string table);

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) override;
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override;
  Result<std::optional<ports::DeviceKey>> FindKeyByInverterRcpn(const std::string& rcpn) override;
  Result<bool> RecordHeard(const std::string& remote_id, Timestamp heard_at,
                           const std::optional<domain::InverterReading>& reading) override;
  Status RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) override;
  Result<std::vector<domain::DeviceRecord>> List() override;
  Result<std::vector<domain::DeviceRecord>> ListPage(const ports::DeviceFilter& filter,
                                                     const std::string& after_remote_id, std::size_t limit) override;
  Result<std::vector<ports::DeviceKey>> ListKeys(const ports::DeviceFilter& filter, const std::string& after_remote_id,
                                                 std::size_t limit) override;
  Result<std::int64_t> Count(const ports::DeviceFilter& filter) override;
  Result<std::vector<ports::DeviceTally>> Tally() override;
  Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp offline_cutoff, const std::string& after_remote_id,
                                                          std::size_t limit) override;
  Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string& site_id) override;
  // Also kInvalidArgument for a negative version, a record too large for one item, more than
  // kMaxInverterRcpns RCP numbers or a key too long.
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override;
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override;

  const std::string& table() const { return table_; }

 private:
  struct Raw;     // a device's items as read (dynamodb_device_store.cc)
  struct Listed;  // one entry of the listing GSI
  using HotFields = dynamodb_internal::HotFields;

  DynamoDbDeviceStore(std::shared_ptr<AwsClient> client, std::string table);

  Result<nlohmann::json> Call(std::string_view operation, const nlohmann::json& request) const;
  // A Query / Scan followed over every page (LastEvaluatedKey), `each` called with every page.
  Status EveryPage(std::string_view operation, nlohmann::json request,
                   const std::function<Status(const nlohmann::json&)>& each) const;
  // The record and hot items of `remote_id` (one consistent Query of its partition).
  Result<Raw> ReadRaw(const std::string& remote_id) const;
  // The items of `keys` (consistent BatchGetItem, 100 keys per call, unprocessed keys again), by
  // "<pk>\n<sk>"; `projection` ("" for whole items) with its `names`.
  Result<std::map<std::string, nlohmann::json>> BatchGet(std::vector<nlohmann::json> keys,
                                                         const std::string& projection,
                                                         const nlohmann::json& names) const;
  // The records of `remote_ids` with their hot fields, in the order given; absent ones skipped.
  Result<std::vector<domain::DeviceRecord>> ReadMany(const std::vector<std::string>& remote_ids) const;
  // The remote_ids under an index partition ("r#<rcpn>", "s#<site>"), in order (consistent Query).
  Result<std::vector<std::string>> IndexCandidates(const std::string& partition, std::size_t limit) const;
  // Up to `limit` GSI entries after `after`, matching `filter` (server-side), in order; sets
  // `exhausted` when the index has nothing more.
  Result<std::vector<Listed>> Walk(const ports::DeviceFilter& filter, const std::string& after, std::size_t limit,
                                   bool& exhausted) const;
  // Up to `limit` records, in remote_id order after `after`, of the GSI entries matching `filter`
  // whose record (read whole, consistently: the index is eventually consistent) passes `keep`.
  // The index is walked `chunk` entries at a time (0: as many as the page still lacks).
  Result<std::vector<domain::DeviceRecord>> ReadListed(
      const ports::DeviceFilter& filter, const std::string& after, std::size_t limit, std::size_t chunk,
      const std::function<bool(const domain::DeviceRecord&)>& keep) const;
  // Writes the hot item if it is still at `read_counter` (absent when nullopt); kAborted otherwise.
  Status WriteHot(const std::string& remote_id, const HotFields& hot, const std::optional<std::int64_t>& read_counter);
  // RecordHeard of `updates` (all of `remote_id`) from `raw` when given (else read): one
  // conditional write, again from a fresh read when another writer came first.
  Result<bool> ApplyUpdates(const std::string& remote_id, const std::vector<const ports::HeardUpdate*>& updates,
                            std::optional<Raw> raw);
  // After a Put of `stored`: the hot item merged with the record's hot fields; what it holds.
  Result<HotFields> MergeHot(const domain::DeviceRecord& stored, std::int64_t incarnation, Raw raw);
  Status PutIndexItem(const std::string& partition, const std::string& remote_id, std::int64_t incarnation,
                      std::int64_t version);
  // Deletes an index item of `incarnation` (written at `up_to_version` or before, when given);
  // best effort: one left behind is ignored by readers.
  void DropIndexItem(const std::string& partition, const std::string& remote_id, std::int64_t incarnation,
                     std::optional<std::int64_t> up_to_version);
  std::int64_t NewId();

  std::shared_ptr<AwsClient> client_;
  std::string table_;
  std::mutex seed_mutex_;
  std::mt19937_64 seed_;  // guarded by seed_mutex_
};

}  // namespace pwrcell::adapters::aws
