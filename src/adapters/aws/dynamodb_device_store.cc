#include "adapters/aws/dynamodb_device_store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "domain/device_json.h"
#include "domain/remote_state.h"

namespace pwrcell::adapters::aws {

namespace dynamodb_internal {
struct HotFields {
  std::int64_t incarnation = 0;  // inc: the record's it belongs to
  std::int64_t counter = 0;      // hv: raised by every write of the item
  std::optional<Timestamp> last_heard_at;
  std::vector<domain::InverterReading> readings;  // in the order first stored
  // The same hot fields (the counter aside).
  bool SameFields(const HotFields& other) const {
    return last_heard_at == other.last_heard_at && readings == other.readings;
  }
};
}  // namespace dynamodb_internal

namespace {

using domain::DeviceRecord;
using domain::InverterReading;
using nlohmann::json;

constexpr std::string_view kRecordSort = "rec";
constexpr std::string_view kHotSort = "hot";
constexpr std::string_view kListingPartition = "d";
// Attempts of a write whose condition failed while the version it expects still holds (a
// concurrent RecordHeard, or a transaction conflict).
constexpr int kWriteAttempts = 10;
constexpr std::size_t kMaxSortKeyBytes = 1024;
constexpr std::size_t kMaxPartitionKeyBytes = 2048;
constexpr std::size_t kBatchGetKeys = 100;  // BatchGetItem's limit
// GSI entries read per step of ListUnsettled (each visited record is read whole).
constexpr std::size_t kVisitChunk = 100;
constexpr std::size_t kMaxQueryLimit = 1000;

json S(std::string_view text) {
  return {{"S", std::string(text)}};
}
json N(std::int64_t number) {
  return {{"N", std::to_string(number)}};
}
json Bool(bool value) {
  return {{"BOOL", value}};
}

std::string DevicePartition(std::string_view remote_id) {
  return "d#" + std::string(remote_id);
}
std::string RcpnPartition(std::string_view rcpn) {
  return "r#" + std::string(rcpn);
}
std::string SitePartition(std::string_view site_id) {
  return "s#" + std::string(site_id);
}

json Key(std::string_view pk, std::string_view sk) {
  return {{"pk", S(pk)}, {"sk", S(sk)}};
}

std::optional<std::string> StringOf(const json& item, const char* name) {
  auto it = item.find(name);
  if (it == item.end() || !it->is_object()) return std::nullopt;
  auto s = it->find("S");
  if (s == it->end() || !s->is_string()) return std::nullopt;
  return s->get<std::string>();
}

std::optional<std::int64_t> NumberOf(const json& item, const char* name) {
  auto it = item.find(name);
  if (it == item.end() || !it->is_object()) return std::nullopt;
  auto n = it->find("N");
  if (n == it->end() || !n->is_string()) return std::nullopt;
  const std::string& text = n->get_ref<const std::string&>();
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string> StringListOf(const json& item, const char* name) {
  std::vector<std::string> values;
  auto it = item.find(name);
  if (it == item.end() || !it->is_object()) return values;
  auto list = it->find("L");
  if (list == it->end() || !list->is_array()) return values;
  for (const auto& element : *list) {
    auto s = element.find("S");
    if (s != element.end() && s->is_string()) values.push_back(s->get<std::string>());
  }
  return values;
}

// The size DynamoDB counts for an attribute value (its documented item-size rules: strings and
// binaries by their bytes, numbers at most 21 bytes, 1 byte for a boolean or null, 3 bytes per
// list or map plus 1 per element). Numbers are counted by their text, which is never less.
std::size_t ValueBytes(const json& value) {
  if (!value.is_object() || value.empty()) return 0;
  const auto& [type, inner] = *value.items().begin();
  if (type == "S" || type == "N" || type == "B")
    return inner.is_string() ? inner.get_ref<const std::string&>().size() : 0;
  if (type == "L") {
    std::size_t bytes = 3;
    for (const auto& element : inner) bytes += 1 + ValueBytes(element);
    return bytes;
  }
  if (type == "M") {
    std::size_t bytes = 3;
    for (const auto& [name, element] : inner.items()) bytes += 1 + name.size() + ValueBytes(element);
    return bytes;
  }
  return 1;
}

std::size_t ItemBytes(const json& item) {
  std::size_t bytes = 0;
  for (const auto& [name, value] : item.items()) bytes += name.size() + ValueBytes(value);
  return bytes;
}

// The distinct non-empty RCP numbers of a record, sorted: the keys it is indexed under.
std::vector<std::string> RcpnKeys(const DeviceRecord& record) {
  std::set<std::string> keys;
  for (const auto& rcpn : record.inverter_rcpns) {
    if (!rcpn.empty()) keys.insert(rcpn);
  }
  return {keys.begin(), keys.end()};
}

std::string SiteKey(const DeviceRecord& record) {
  return record.site ? record.site->site_id : std::string();
}

// The record as its item's "rec" holds it: without the hot fields, which live in the hot item.
std::string ColdJson(const DeviceRecord& record) {
  DeviceRecord cold = record;
  cold.last_heard_at.reset();
  cold.inverter_readings.clear();
  return domain::DumpDeviceJson(cold);
}

json RecordItem(const DeviceRecord& record, std::int64_t incarnation) {
  json item = {{"pk", S(DevicePartition(record.remote_id))},
               {"sk", S(kRecordSort)},
               {"rid", S(record.remote_id)},
               {"lp", S(kListingPartition)},
               {"ver", N(record.version)},
               {"inc", N(incarnation)},
               {"rec", S(ColdJson(record))},
               {"sim", Bool(record.is_simulated)},
               {"cs", S(domain::CommissioningStateName(record.commissioning.state))}};
  if (record.remote_state) item["rs"] = S(domain::RemoteStateName(*record.remote_state));
  if (const std::string site = SiteKey(record); !site.empty()) item["site"] = S(site);
  const auto rcpns = RcpnKeys(record);
  if (!rcpns.empty()) {
    json list = json::array();
    for (const auto& rcpn : rcpns) list.push_back(S(rcpn));
    item["rcpns"] = {{"L", std::move(list)}};
  }
  return item;
}

using Hot = dynamodb_internal::HotFields;

std::string ReadingsJson(const std::vector<InverterReading>& readings) {
  json list = json::array();
  for (const auto& r : readings) list.push_back({r.rcpn, r.state, r.sys_mode, ToUnixMillis(r.at)});
  return list.dump(-1, ' ', false, json::error_handler_t::replace);
}

json HotItem(std::string_view remote_id, const Hot& hot) {
  json item = {{"pk", S(DevicePartition(remote_id))},
               {"sk", S(kHotSort)},
               {"inc", N(hot.incarnation)},
               {"hv", N(hot.counter)},
               {"rd", S(ReadingsJson(hot.readings))}};
  if (hot.last_heard_at) item["lh"] = N(ToUnixMillis(*hot.last_heard_at));
  return item;
}

Result<Hot> DecodeHot(const json& item) {
  Hot hot;
  hot.incarnation = NumberOf(item, "inc").value_or(0);
  hot.counter = NumberOf(item, "hv").value_or(0);
  if (auto heard = NumberOf(item, "lh")) hot.last_heard_at = FromUnixMillis(*heard);
  const auto text = StringOf(item, "rd").value_or("[]");
  const auto list = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return InternalError("a stored device's readings are not a JSON array");
  for (const auto& r : list) {
    if (!r.is_array() || r.size() != 4 || !r[0].is_string() || !r[1].is_number_unsigned() ||
        !r[2].is_number_integer() || !r[3].is_number_integer()) {
      return InternalError("a stored device's reading does not decode: " + r.dump());
    }
    hot.readings.push_back({r[0].get<std::string>(), r[1].get<std::uint32_t>(), r[2].get<int>(),
                            FromUnixMillis(r[3].get<std::int64_t>())});
  }
  return hot;
}

Result<DeviceRecord> DecodeRecord(const json& item) {
  const auto text = StringOf(item, "rec");
  const auto version = NumberOf(item, "ver");
  if (!text || !version) return InternalError("a stored device item lacks its record or version");
  const auto parsed = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InternalError("a stored device record is not JSON");
  auto record = domain::DeviceFromJson(parsed);
  if (!record.ok()) return InternalError("a stored device record does not decode: " + record.status().message());
  record->version = *version;
  return record;
}

// Puts the hot fields into `record`, readings in the order of its inverter_rcpns.
void ApplyHot(DeviceRecord& record, const Hot& hot) {
  record.last_heard_at = hot.last_heard_at;
  record.inverter_readings.clear();
  for (const auto& reading : hot.readings) record.RecordInverterReading(reading);
}

Hot HotOf(const DeviceRecord& record, std::int64_t incarnation) {
  return Hot{incarnation, 0, record.last_heard_at, record.inverter_readings};
}

bool NoHotFields(const Hot& hot) {
  return !hot.last_heard_at && hot.readings.empty();
}

// `record` as a Put stores it over the stored hot fields (ports/device_store.h, "Hot fields"), as
// MemoryDeviceStore does: last_heard_at never moves backwards, a stored reading newer than the
// record's is kept, and the reading of an inverter the record neither reports nor lists is dropped.
DeviceRecord MergeHotFields(DeviceRecord record, const Hot& current) {
  if (current.last_heard_at) record.RaiseLastHeard(*current.last_heard_at);
  for (const auto& kept : current.readings) {
    const bool reported = std::any_of(record.inverter_readings.begin(), record.inverter_readings.end(),
                                      [&](const InverterReading& r) { return r.rcpn == kept.rcpn; });
    const bool listed =
        std::find(record.inverter_rcpns.begin(), record.inverter_rcpns.end(), kept.rcpn) != record.inverter_rcpns.end();
    if (!reported && !listed) continue;
    auto same = std::find_if(record.inverter_readings.begin(), record.inverter_readings.end(),
                             [&](const InverterReading& r) { return r.rcpn == kept.rcpn; });
    if (same != record.inverter_readings.end() && same->at >= kept.at) continue;
    record.RecordInverterReading(kept);
  }
  return record;
}

// What the hot item holds after the updates, and whether they changed it.
bool ApplyHeard(Hot& hot, Timestamp heard_at, const std::optional<InverterReading>& reading) {
  // DeviceRecord's own rules (RaiseLastHeard, RecordInverterReading) on a record without
  // inverter_rcpns, which keeps the readings in the order they were first stored.
  DeviceRecord shell;
  shell.last_heard_at = hot.last_heard_at;
  shell.inverter_readings = std::move(hot.readings);
  bool changed = shell.RaiseLastHeard(heard_at);
  if (reading && shell.RecordInverterReading(*reading)) changed = true;
  hot.last_heard_at = shell.last_heard_at;
  hot.readings = std::move(shell.inverter_readings);
  return changed;
}

bool Matches(const ports::DeviceFilter& filter, const DeviceRecord& record) {
  if (filter.is_simulated && record.is_simulated != *filter.is_simulated) return false;
  if (filter.remote_state && record.remote_state != filter.remote_state) return false;
  return true;
}

// A short random pause before another attempt, so that writers in conflict spread out.
void PauseBeforeAttempt(int attempt, std::uint64_t noise) {
  const auto ms = static_cast<int>(std::min(attempt, 6) * 5 + static_cast<int>(noise % 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

Status CheckSchema(const json& table, const std::string& name) {
  const auto key_is = [](const json& schema, std::string_view hash, std::string_view range) {
    if (!schema.is_array() || schema.size() != 2) return false;
    bool hash_ok = false, range_ok = false;
    for (const auto& k : schema) {
      const auto attribute = k.value("AttributeName", "");
      const auto type = k.value("KeyType", "");
      if (attribute == hash && type == "HASH") hash_ok = true;
      if (attribute == range && type == "RANGE") range_ok = true;
    }
    return hash_ok && range_ok;
  };
  if (!key_is(table.value("KeySchema", json()), "pk", "sk")) {
    return FailedPreconditionError(
        "DynamoDB table " + name +
        " is not a device table: its key is not (pk HASH, sk RANGE): " + table.value("KeySchema", json()).dump());
  }
  for (const auto& index : table.value("GlobalSecondaryIndexes", json::array())) {
    if (index.value("IndexName", "") != DynamoDbDeviceStore::kListingIndex) continue;
    if (!key_is(index.value("KeySchema", json()), "lp", "rid")) {
      return FailedPreconditionError("DynamoDB table " + name + ": index " +
                                     std::string(DynamoDbDeviceStore::kListingIndex) +
                                     " is not keyed by (lp HASH, rid RANGE)");
    }
    const json projection = index.value("Projection", json::object());
    const std::string type = projection.value("ProjectionType", "");
    if (type == "ALL") return Status::Ok();
    const json included = projection.value("NonKeyAttributes", json::array());
    for (const char* needed : {"ver", "sim", "rs", "cs"}) {
      if (type != "INCLUDE" || std::find(included.begin(), included.end(), needed) == included.end()) {
        return FailedPreconditionError("DynamoDB table " + name + ": index " +
                                       std::string(DynamoDbDeviceStore::kListingIndex) + " does not project " + needed);
      }
    }
    return Status::Ok();
  }
  return FailedPreconditionError("DynamoDB table " + name + " has no global secondary index " +
                                 std::string(DynamoDbDeviceStore::kListingIndex));
}

bool Active(const json& table) {
  if (table.value("TableStatus", "") != "ACTIVE") return false;
  for (const auto& index : table.value("GlobalSecondaryIndexes", json::array())) {
    if (index.value("IndexStatus", "ACTIVE") != "ACTIVE") return false;
  }
  return true;
}

// A Query on the listing index (every device, in remote_id order) that keeps only the devices
// `filter` selects. `key_condition` is added to "#lp = :lp" (e.g. " AND #rid > :after"); `names`
// and `values` hold the placeholders of the caller's own expressions, and only those: DynamoDB
// refuses an unused one. The caller adds what the Query reads (ProjectionExpression or Select).
json ListingQuery(const std::string& table, const ports::DeviceFilter& filter, const std::string& key_condition,
                  json names, json values) {
  names["#lp"] = "lp";
  values[":lp"] = S(kListingPartition);
  std::string filter_expression;
  if (filter.is_simulated) {
    names["#sim"] = "sim";
    values[":sim"] = Bool(*filter.is_simulated);
    filter_expression = "#sim = :sim";
  }
  if (filter.remote_state) {
    names["#rs"] = "rs";
    values[":rs"] = S(domain::RemoteStateName(*filter.remote_state));
    filter_expression += (filter_expression.empty() ? "" : " AND ") + std::string("#rs = :rs");
  }
  json request = {{"TableName", table},
                  {"IndexName", std::string(DynamoDbDeviceStore::kListingIndex)},
                  {"KeyConditionExpression", "#lp = :lp" + key_condition},
                  {"ExpressionAttributeNames", std::move(names)},
                  {"ExpressionAttributeValues", std::move(values)}};
  if (!filter_expression.empty()) request["FilterExpression"] = filter_expression;
  return request;
}

}  // namespace

// A device's items as read by one consistent Query of its partition, not decoded.
struct DynamoDbDeviceStore::Raw {
  std::optional<json> record_item;
  std::optional<Hot> hot;  // the hot item as stored, whichever incarnation it belongs to

  std::int64_t incarnation() const { return NumberOf(*record_item, "inc").value_or(0); }
  std::int64_t version() const { return NumberOf(*record_item, "ver").value_or(0); }
  std::vector<std::string> rcpns() const { return StringListOf(*record_item, "rcpns"); }
  std::string site() const { return StringOf(*record_item, "site").value_or(""); }
  // The hot fields of the record: those of a hot item of its incarnation, else none.
  Hot RecordHot() const {
    if (hot && record_item && hot->incarnation == incarnation()) return *hot;
    return Hot{record_item ? incarnation() : 0, 0, std::nullopt, {}};
  }
};

struct DynamoDbDeviceStore::Listed {
  std::string remote_id;
  std::int64_t version = 0;
};

namespace {

// The record of a record item with the hot fields of `hot` when they are of its incarnation.
Result<DeviceRecord> Assemble(const json& record_item, const std::optional<Hot>& hot) {
  auto record = DecodeRecord(record_item);
  if (!record.ok()) return record.status();
  if (hot && hot->incarnation == NumberOf(record_item, "inc").value_or(0)) ApplyHot(*record, *hot);
  return record;
}

// Whether a record item lists `rcpn` among the RCP numbers it is indexed under.
bool Lists(const json& record_item, const std::string& rcpn) {
  const auto rcpns = StringListOf(record_item, "rcpns");
  return std::find(rcpns.begin(), rcpns.end(), rcpn) != rcpns.end();
}

}  // namespace

DynamoDbDeviceStore::DynamoDbDeviceStore(std::shared_ptr<AwsClient> client, std::string table)
    : client_(std::move(client)), table_(std::move(table)), seed_(std::random_device{}()) {}

Status DynamoDbDeviceStore::CreateTable(const AwsClient& client, const std::string& table) {
  const json request = {
      {"TableName", table},
      {"AttributeDefinitions",
       {{{"AttributeName", "pk"}, {"AttributeType", "S"}},
        {{"AttributeName", "sk"}, {"AttributeType", "S"}},
        {{"AttributeName", "lp"}, {"AttributeType", "S"}},
        {{"AttributeName", "rid"}, {"AttributeType", "S"}}}},
      {"KeySchema", {{{"AttributeName", "pk"}, {"KeyType", "HASH"}}, {{"AttributeName", "sk"}, {"KeyType", "RANGE"}}}},
      {"BillingMode", "PAY_PER_REQUEST"},
      {"GlobalSecondaryIndexes",
       {{{"IndexName", std::string(kListingIndex)},
         {"KeySchema",
          {{{"AttributeName", "lp"}, {"KeyType", "HASH"}}, {{"AttributeName", "rid"}, {"KeyType", "RANGE"}}}},
         {"Projection", {{"ProjectionType", "INCLUDE"}, {"NonKeyAttributes", {"ver", "sim", "rs", "cs"}}}}}}}};
  auto created = client.Call(kDynamoDb, "CreateTable", request);
  if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
    return created.status().WithContext("creating DynamoDB table " + table);
  }
  // Created or already there: check what it is and wait until it can be used.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (true) {
    auto described = client.Call(kDynamoDb, "DescribeTable", {{"TableName", table}});
    if (!described.ok()) return described.status().WithContext("describing DynamoDB table " + table);
    const json& description = (*described)["Table"];
    PWRCELL_RETURN_IF_ERROR(CheckSchema(description, table));
    if (Active(description)) return Status::Ok();
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("DynamoDB table " + table + " is not ACTIVE after 5 minutes");
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

Result<std::unique_ptr<DynamoDbDeviceStore>> DynamoDbDeviceStore::Open(std::shared_ptr<AwsClient> client,
                                                                       std::string table) {
  auto described = client->Call(kDynamoDb, "DescribeTable", {{"TableName", table}});
  if (!described.ok()) {
    if (described.status().code() == StatusCode::kNotFound) {
      return NotFoundError("the device table: DynamoDB table " + table +
                           " does not exist: " + described.status().message());
    }
    return described.status().WithContext("opening the device table: DynamoDB table " + table);
  }
  const json& description = (*described)["Table"];
  PWRCELL_RETURN_IF_ERROR(CheckSchema(description, table));
  const std::string status = description.value("TableStatus", "");
  if (status == "CREATING") return UnavailableError("DynamoDB table " + table + " is still being created");
  if (status == "DELETING" || status == "ARCHIVING" || status == "ARCHIVED" ||
      status == "INACCESSIBLE_ENCRYPTION_CREDENTIALS") {
    return FailedPreconditionError("DynamoDB table " + table + " cannot be used: it is " + status);
  }
  return std::unique_ptr<DynamoDbDeviceStore>(new DynamoDbDeviceStore(std::move(client), std::move(table)));
}

Result<json> DynamoDbDeviceStore::Call(std::string_view operation, const json& request) const {
  Result<json> answer = InternalError("unreachable");
  try {
    answer = client_->Call(kDynamoDb, operation, request);
  } catch (const json::exception& e) {
    // Serialising the request throws on a string that is not UTF-8 (a key given by a caller; the
    // record itself is dumped with replacement). DynamoDB strings are UTF-8: nothing is stored
    // under such a key.
    return InvalidArgumentError("DynamoDB table " + table_ + ": " + std::string(operation) +
                                " of a key that is not UTF-8 (" + e.what() + ")");
  }
  if (!answer.ok()) return answer.status().WithContext("DynamoDB table " + table_);
  return answer;
}

std::int64_t DynamoDbDeviceStore::NewId() {
  std::lock_guard lock(seed_mutex_);
  // Within 2^52, so that every JSON reader holds it exactly; random, so that a record removed and
  // created again never meets the incarnation (or hot counter) of the one before.
  return static_cast<std::int64_t>(seed_() >> 12);
}

Status DynamoDbDeviceStore::EveryPage(std::string_view operation, json request,
                                      const std::function<Status(const json&)>& each) const {
  while (true) {
    auto page = Call(operation, request);
    if (!page.ok()) return page.status();
    PWRCELL_RETURN_IF_ERROR(each(*page));
    auto last = page->find("LastEvaluatedKey");
    if (last == page->end() || !last->is_object() || last->empty()) return Status::Ok();
    request["ExclusiveStartKey"] = *last;
  }
}

Result<DynamoDbDeviceStore::Raw> DynamoDbDeviceStore::ReadRaw(const std::string& remote_id) const {
  Raw raw;
  const json request = {{"TableName", table_},
                        {"KeyConditionExpression", "#pk = :pk"},
                        {"ExpressionAttributeNames", {{"#pk", "pk"}}},
                        {"ExpressionAttributeValues", {{":pk", S(DevicePartition(remote_id))}}},
                        {"ConsistentRead", true}};
  PWRCELL_RETURN_IF_ERROR(EveryPage("Query", request, [&](const json& page) {
    for (const auto& item : page.value("Items", json::array())) {
      const auto sort = StringOf(item, "sk");
      if (sort == kRecordSort) raw.record_item = item;
      if (sort == kHotSort) {
        auto hot = DecodeHot(item);
        if (!hot.ok()) return hot.status().WithContext("device " + remote_id);
        raw.hot = std::move(hot).value();
      }
    }
    return Status::Ok();
  }));
  return raw;
}

Result<std::map<std::string, json>> DynamoDbDeviceStore::BatchGet(std::vector<json> keys, const std::string& projection,
                                                                  const json& names) const {
  std::map<std::string, json> found;  // by "<pk>\n<sk>"
  for (std::size_t start = 0; start < keys.size(); start += kBatchGetKeys) {
    json chunk = json::array();
    for (std::size_t i = start; i < std::min(keys.size(), start + kBatchGetKeys); ++i) chunk.push_back(keys[i]);
    json table_request = {{"Keys", std::move(chunk)}, {"ConsistentRead", true}};
    if (!projection.empty()) {
      table_request["ProjectionExpression"] = projection;
      table_request["ExpressionAttributeNames"] = names;
    }
    json request_items = {{table_, std::move(table_request)}};
    for (int attempt = 1;; ++attempt) {
      auto answer = Call("BatchGetItem", {{"RequestItems", request_items}});
      if (!answer.ok()) return answer.status();
      const json responses = answer->value("Responses", json::object());
      for (const auto& item : responses.value(table_, json::array())) {
        found[StringOf(item, "pk").value_or("") + "\n" + StringOf(item, "sk").value_or("")] = item;
      }
      // Keys DynamoDB did not read this time (throughput, or the 16 MB answer limit): again after a
      // pause, as AWS advises.
      const json unprocessed = answer->value("UnprocessedKeys", json::object());
      if (unprocessed.empty() || !unprocessed.contains(table_)) break;
      if (attempt >= kWriteAttempts) {
        return UnavailableError("DynamoDB table " + table_ + ": BatchGetItem left keys unread after " +
                                std::to_string(attempt) + " attempts");
      }
      request_items = unprocessed;
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
    }
  }
  return found;
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::ReadMany(const std::vector<std::string>& remote_ids) const {
  std::vector<json> keys;
  keys.reserve(remote_ids.size() * 2);
  for (const auto& remote_id : remote_ids) {
    keys.push_back(Key(DevicePartition(remote_id), kRecordSort));
    keys.push_back(Key(DevicePartition(remote_id), kHotSort));
  }
  auto items = BatchGet(std::move(keys), "", json());
  if (!items.ok()) return items.status();
  std::vector<DeviceRecord> found;
  found.reserve(remote_ids.size());
  for (const auto& remote_id : remote_ids) {
    const std::string pk = DevicePartition(remote_id);
    auto record_item = items->find(pk + "\n" + std::string(kRecordSort));
    if (record_item == items->end()) continue;  // removed since it was listed
    std::optional<Hot> hot;
    if (auto hot_item = items->find(pk + "\n" + std::string(kHotSort)); hot_item != items->end()) {
      auto decoded = DecodeHot(hot_item->second);
      if (!decoded.ok()) return decoded.status().WithContext("device " + remote_id);
      hot = std::move(decoded).value();
    }
    auto record = Assemble(record_item->second, hot);
    if (!record.ok()) return record.status().WithContext("device " + remote_id);
    found.push_back(std::move(record).value());
  }
  return found;
}

Result<std::vector<std::string>> DynamoDbDeviceStore::IndexCandidates(const std::string& partition,
                                                                      std::size_t limit) const {
  json request = {{"TableName", table_},
                  {"KeyConditionExpression", "#pk = :pk"},
                  {"ProjectionExpression", "#sk"},
                  {"ExpressionAttributeNames", {{"#pk", "pk"}, {"#sk", "sk"}}},
                  {"ExpressionAttributeValues", {{":pk", S(partition)}}},
                  {"ConsistentRead", true}};
  if (limit > 0) request["Limit"] = limit;
  std::vector<std::string> ids;  // in sort key (remote_id) order
  PWRCELL_RETURN_IF_ERROR(EveryPage("Query", request, [&](const json& page) {
    for (const auto& item : page.value("Items", json::array())) {
      if (auto remote_id = StringOf(item, "sk")) ids.push_back(std::move(*remote_id));
    }
    return Status::Ok();
  }));
  return ids;
}

Result<std::vector<DynamoDbDeviceStore::Listed>> DynamoDbDeviceStore::Walk(const ports::DeviceFilter& filter,
                                                                           const std::string& after, std::size_t limit,
                                                                           bool& exhausted) const {
  std::vector<Listed> listed;
  exhausted = false;
  json values = json::object();
  std::string key_condition;
  // An empty string is not a valid key value: the first page has no lower bound.
  if (!after.empty()) {
    key_condition = " AND #rid > :after";
    values[":after"] = S(after);
  }
  json request = ListingQuery(table_, filter, key_condition, {{"#rid", "rid"}, {"#ver", "ver"}}, std::move(values));
  request["ProjectionExpression"] = "#rid, #ver";
  const bool filtered = request.contains("FilterExpression");
  while (listed.size() < limit) {
    // Limit counts the items read before the filter: with a filter, read more than the page needs.
    const std::size_t remaining = limit - listed.size();
    request["Limit"] = std::min(kMaxQueryLimit, filtered ? std::max<std::size_t>(remaining, 100) : remaining);
    auto page = Call("Query", request);
    if (!page.ok()) return page.status();
    const json items = page->value("Items", json::array());
    bool truncated = false;
    for (const auto& item : items) {
      if (listed.size() == limit) {
        truncated = true;
        break;
      }
      auto remote_id = StringOf(item, "rid");
      if (!remote_id) return InternalError("DynamoDB table " + table_ + ": an index entry without rid");
      listed.push_back({std::move(*remote_id), NumberOf(item, "ver").value_or(0)});
    }
    auto last = page->find("LastEvaluatedKey");
    if (last == page->end() || !last->is_object() || last->empty()) {
      exhausted = !truncated;
      break;
    }
    request["ExclusiveStartKey"] = *last;
  }
  return listed;
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::ReadListed(
    const ports::DeviceFilter& filter, const std::string& after, std::size_t limit, std::size_t chunk,
    const std::function<bool(const DeviceRecord&)>& keep) const {
  std::vector<DeviceRecord> page;
  std::string cursor = after;
  while (page.size() < limit) {
    bool exhausted = false;
    auto listed = Walk(filter, cursor, chunk > 0 ? chunk : limit - page.size(), exhausted);
    if (!listed.ok()) return listed.status();
    if (listed->empty()) break;
    std::vector<std::string> ids;
    ids.reserve(listed->size());
    for (const auto& entry : *listed) ids.push_back(entry.remote_id);
    auto records = ReadMany(ids);
    if (!records.ok()) return records.status();
    for (auto& record : *records) {
      if (!keep(record)) continue;
      page.push_back(std::move(record));
      if (page.size() == limit) break;
    }
    cursor = ids.back();
    if (exhausted) break;
  }
  return page;
}

Result<std::optional<DeviceRecord>> DynamoDbDeviceStore::Get(const std::string& remote_id) {
  if (remote_id.empty() || remote_id.size() > kMaxSortKeyBytes) return std::optional<DeviceRecord>();
  auto raw = ReadRaw(remote_id);
  if (!raw.ok()) return raw.status();
  if (!raw->record_item) return std::optional<DeviceRecord>();
  auto record = Assemble(*raw->record_item, raw->hot);
  if (!record.ok()) return record.status().WithContext("device " + remote_id);
  return std::optional<DeviceRecord>(std::move(record).value());
}

Result<std::optional<ports::DeviceKey>> DynamoDbDeviceStore::FindKeyByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty() || rcpn.size() + 2 > kMaxPartitionKeyBytes) return std::optional<ports::DeviceKey>();
  auto candidates = IndexCandidates(RcpnPartition(rcpn), 0);
  if (!candidates.ok()) return candidates.status();
  if (candidates->empty()) return std::optional<ports::DeviceKey>();
  // The index items are hints: the record (read consistently) decides.
  std::vector<json> keys;
  for (const auto& remote_id : *candidates) keys.push_back(Key(DevicePartition(remote_id), kRecordSort));
  auto items = BatchGet(std::move(keys), "#pk, #sk, #ver, #rcpns",
                        {{"#pk", "pk"}, {"#sk", "sk"}, {"#ver", "ver"}, {"#rcpns", "rcpns"}});
  if (!items.ok()) return items.status();
  for (const auto& remote_id : *candidates) {
    auto item = items->find(DevicePartition(remote_id) + "\n" + std::string(kRecordSort));
    if (item == items->end() || !Lists(item->second, rcpn)) continue;
    return std::optional<ports::DeviceKey>(ports::DeviceKey{remote_id, NumberOf(item->second, "ver").value_or(0)});
  }
  return std::optional<ports::DeviceKey>();
}

Result<std::optional<DeviceRecord>> DynamoDbDeviceStore::FindByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty() || rcpn.size() + 2 > kMaxPartitionKeyBytes) return std::optional<DeviceRecord>();
  auto candidates = IndexCandidates(RcpnPartition(rcpn), 0);
  if (!candidates.ok()) return candidates.status();
  for (const auto& remote_id : *candidates) {
    auto raw = ReadRaw(remote_id);
    if (!raw.ok()) return raw.status();
    if (!raw->record_item || !Lists(*raw->record_item, rcpn)) continue;  // a stale hint
    auto record = Assemble(*raw->record_item, raw->hot);
    if (!record.ok()) return record.status().WithContext("device " + remote_id);
    return std::optional<DeviceRecord>(std::move(record).value());
  }
  return std::optional<DeviceRecord>();
}

Status DynamoDbDeviceStore::WriteHot(const std::string& remote_id, const Hot& hot,
                                     const std::optional<std::int64_t>& read_counter) {
  Hot next = hot;
  next.counter = read_counter ? *read_counter + 1 : NewId();
  const json item = HotItem(remote_id, next);
  if (ItemBytes(item) > kMaxItemBytes) {
    return InvalidArgumentError("the inverter readings of device " + remote_id +
                                " exceed DynamoDB's 400 KB item limit");
  }
  // Only over the item as it was read: a concurrent writer, or a Remove, fails the condition.
  json request = {{"TableName", table_}, {"Item", item}};
  if (read_counter) {
    request["ConditionExpression"] = "#hv = :hv";
    request["ExpressionAttributeNames"] = {{"#hv", "hv"}};
    request["ExpressionAttributeValues"] = {{":hv", N(*read_counter)}};
  } else {
    request["ConditionExpression"] = "attribute_not_exists(#pk)";
    request["ExpressionAttributeNames"] = {{"#pk", "pk"}};
  }
  auto written = Call("PutItem", request);
  return written.ok() ? Status::Ok() : written.status();
}

Result<bool> DynamoDbDeviceStore::ApplyUpdates(const std::string& remote_id,
                                               const std::vector<const ports::HeardUpdate*>& updates,
                                               std::optional<Raw> raw) {
  if (remote_id.empty() || remote_id.size() > kMaxSortKeyBytes) return NotFoundError("no device " + remote_id);
  for (int attempt = 1;; ++attempt) {
    if (!raw) {
      auto read = ReadRaw(remote_id);
      if (!read.ok()) return read.status();
      raw = std::move(read).value();
    }
    if (!raw->record_item) return NotFoundError("no device " + remote_id);
    Hot hot = raw->RecordHot();
    bool changed = false;
    for (const auto* update : updates) changed = ApplyHeard(hot, update->heard_at, update->reading) || changed;
    if (!changed) return false;
    const Status written =
        WriteHot(remote_id, hot, raw->hot ? std::optional<std::int64_t>(raw->hot->counter) : std::nullopt);
    if (written.ok()) return true;
    if (written.code() != StatusCode::kAborted) return written;
    if (attempt >= kWriteAttempts) {
      return AbortedError("DynamoDB table " + table_ + ": the hot fields of device " + remote_id +
                          " kept changing: " + written.message());
    }
    raw.reset();  // written or removed since it was read: read again
  }
}

Result<bool> DynamoDbDeviceStore::RecordHeard(const std::string& remote_id, Timestamp heard_at,
                                              const std::optional<InverterReading>& reading) {
  const ports::HeardUpdate update{remote_id, heard_at, reading};
  return ApplyUpdates(remote_id, {&update}, std::nullopt);
}

Status DynamoDbDeviceStore::RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) {
  // Each device's updates in their order, the devices in the order first named.
  std::vector<std::string> devices;
  std::map<std::string, std::vector<const ports::HeardUpdate*>> by_device;
  for (const auto& update : updates) {
    if (update.remote_id.empty() || update.remote_id.size() > kMaxSortKeyBytes) continue;  // no such device
    auto& list = by_device[update.remote_id];
    if (list.empty()) devices.push_back(update.remote_id);
    list.push_back(&update);
  }
  // The record (its incarnation only) and hot items of 50 devices per BatchGetItem.
  constexpr std::size_t kDevicesPerRead = kBatchGetKeys / 2;
  for (std::size_t start = 0; start < devices.size(); start += kDevicesPerRead) {
    const std::size_t end = std::min(devices.size(), start + kDevicesPerRead);
    std::vector<json> keys;
    for (std::size_t i = start; i < end; ++i) {
      keys.push_back(Key(DevicePartition(devices[i]), kRecordSort));
      keys.push_back(Key(DevicePartition(devices[i]), kHotSort));
    }
    auto items = BatchGet(std::move(keys), "#pk, #sk, #inc, #hv, #lh, #rd",
                          {{"#pk", "pk"}, {"#sk", "sk"}, {"#inc", "inc"}, {"#hv", "hv"}, {"#lh", "lh"}, {"#rd", "rd"}});
    if (!items.ok()) return items.status();
    for (std::size_t i = start; i < end; ++i) {
      const std::string pk = DevicePartition(devices[i]);
      auto record_item = items->find(pk + "\n" + std::string(kRecordSort));
      if (record_item == items->end()) continue;  // no such device: skipped
      Raw raw;
      raw.record_item = record_item->second;
      if (auto hot_item = items->find(pk + "\n" + std::string(kHotSort)); hot_item != items->end()) {
        auto hot = DecodeHot(hot_item->second);
        if (!hot.ok()) return hot.status().WithContext("device " + devices[i]);
        raw.hot = std::move(hot).value();
      }
      auto applied = ApplyUpdates(devices[i], by_device[devices[i]], std::move(raw));
      if (!applied.ok() && applied.status().code() != StatusCode::kNotFound) {
        return applied.status().WithContext("recording telemetry of device " + devices[i]);
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::List() {
  std::map<std::string, json> records;  // by remote_id: ordered
  std::map<std::string, json> hots;     // by partition key
  const json request = {{"TableName", table_}, {"ConsistentRead", true}};
  PWRCELL_RETURN_IF_ERROR(EveryPage("Scan", request, [&](const json& page) {
    for (const auto& item : page.value("Items", json::array())) {
      const auto sort = StringOf(item, "sk");
      if (sort == kRecordSort) records[StringOf(item, "rid").value_or("")] = item;
      if (sort == kHotSort) hots[StringOf(item, "pk").value_or("")] = item;
    }
    return Status::Ok();
  }));
  std::vector<DeviceRecord> all;
  all.reserve(records.size());
  for (const auto& [remote_id, item] : records) {
    std::optional<Hot> hot;
    if (auto hot_item = hots.find(DevicePartition(remote_id)); hot_item != hots.end()) {
      auto decoded = DecodeHot(hot_item->second);
      if (!decoded.ok()) return decoded.status().WithContext("device " + remote_id);
      hot = std::move(decoded).value();
    }
    auto record = Assemble(item, hot);
    if (!record.ok()) return record.status().WithContext("device " + remote_id);
    all.push_back(std::move(record).value());
  }
  return all;
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::ListPage(const ports::DeviceFilter& filter,
                                                                const std::string& after_remote_id, std::size_t limit) {
  // The index is eventually consistent: the record read now decides (a short page would end
  // the caller's pass, so the page is filled from further on instead).
  return ReadListed(filter, after_remote_id, limit, 0,
                    [&](const DeviceRecord& record) { return Matches(filter, record); });
}

Result<std::vector<ports::DeviceKey>> DynamoDbDeviceStore::ListKeys(const ports::DeviceFilter& filter,
                                                                    const std::string& after_remote_id,
                                                                    std::size_t limit) {
  std::vector<ports::DeviceKey> keys;
  if (limit == 0) return keys;
  bool exhausted = false;
  auto listed = Walk(filter, after_remote_id, limit, exhausted);
  if (!listed.ok()) return listed.status();
  keys.reserve(listed->size());
  for (auto& entry : *listed) keys.push_back({std::move(entry.remote_id), entry.version});
  return keys;
}

Result<std::int64_t> DynamoDbDeviceStore::Count(const ports::DeviceFilter& filter) {
  json request = ListingQuery(table_, filter, "", json::object(), json::object());
  request["Select"] = "COUNT";
  std::int64_t count = 0;
  PWRCELL_RETURN_IF_ERROR(EveryPage("Query", request, [&](const json& page) {
    count += page.value("Count", std::int64_t{0});
    return Status::Ok();
  }));
  return count;
}

Result<std::vector<ports::DeviceTally>> DynamoDbDeviceStore::Tally() {
  const json request = {{"TableName", table_},
                        {"IndexName", std::string(kListingIndex)},
                        {"KeyConditionExpression", "#lp = :lp"},
                        {"ProjectionExpression", "#sim, #rs, #cs"},
                        {"ExpressionAttributeNames", {{"#lp", "lp"}, {"#sim", "sim"}, {"#rs", "rs"}, {"#cs", "cs"}}},
                        {"ExpressionAttributeValues", {{":lp", S(kListingPartition)}}}};
  std::vector<ports::DeviceTally> tallies;
  PWRCELL_RETURN_IF_ERROR(EveryPage("Query", request, [&](const json& page) {
    for (const auto& item : page.value("Items", json::array())) {
      ports::DeviceTally tally;
      if (auto sim = item.find("sim"); sim != item.end() && sim->is_object() && sim->contains("BOOL")) {
        tally.is_simulated = (*sim)["BOOL"].get<bool>();
      }
      if (auto state = StringOf(item, "rs")) tally.remote_state = domain::ParseRemoteState(*state);
      tally.commissioning = domain::ParseCommissioningState(StringOf(item, "cs").value_or(""))
                                .value_or(domain::CommissioningState::kNotRequested);
      auto same = std::find_if(tallies.begin(), tallies.end(), [&](const ports::DeviceTally& t) {
        return t.is_simulated == tally.is_simulated && t.remote_state == tally.remote_state &&
               t.commissioning == tally.commissioning;
      });
      if (same == tallies.end()) {
        tally.count = 1;
        tallies.push_back(tally);
      } else {
        ++same->count;
      }
    }
    return Status::Ok();
  }));
  return tallies;
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::ListUnsettled(Timestamp offline_cutoff,
                                                                     const std::string& after_remote_id,
                                                                     std::size_t limit) {
  return ReadListed({}, after_remote_id, limit, kVisitChunk,
                    [&](const DeviceRecord& record) { return !domain::EvaluationSettled(record, offline_cutoff); });
}

Result<std::vector<DeviceRecord>> DynamoDbDeviceStore::ListBySite(const std::string& site_id) {
  if (site_id.empty() || site_id.size() + 2 > kMaxPartitionKeyBytes) return std::vector<DeviceRecord>();
  auto ids = IndexCandidates(SitePartition(site_id), 0);
  if (!ids.ok()) return ids.status();
  auto records = ReadMany(*ids);
  if (!records.ok()) return records.status();
  // The index items are hints: a record no longer on the site (moved, or a hint left by a write
  // that failed) is not listed.
  std::erase_if(*records, [&](const DeviceRecord& r) { return SiteKey(r) != site_id; });
  return records;
}

Status DynamoDbDeviceStore::PutIndexItem(const std::string& partition, const std::string& remote_id,
                                         std::int64_t incarnation, std::int64_t version) {
  json item = {{"pk", S(partition)}, {"sk", S(remote_id)}, {"inc", N(incarnation)}, {"ver", N(version)}};
  auto put = Call("PutItem", {{"TableName", table_}, {"Item", std::move(item)}});
  return put.ok() ? Status::Ok() : put.status();
}

void DynamoDbDeviceStore::DropIndexItem(const std::string& partition, const std::string& remote_id,
                                        std::int64_t incarnation, std::optional<std::int64_t> up_to_version) {
  // Only a hint of this incarnation, written by this write or an earlier one: a later write that
  // named the key again has rewritten the item with its own version, and keeps it.
  json request = {{"TableName", table_}, {"Key", Key(partition, remote_id)}};
  request["ConditionExpression"] = up_to_version ? "#inc = :inc AND #ver <= :ver" : "#inc = :inc";
  request["ExpressionAttributeNames"] = up_to_version ? json{{"#inc", "inc"}, {"#ver", "ver"}} : json{{"#inc", "inc"}};
  request["ExpressionAttributeValues"] =
      up_to_version ? json{{":inc", N(incarnation)}, {":ver", N(*up_to_version)}} : json{{":inc", N(incarnation)}};
  // A hint left behind (a failed call, a failed condition) is harmless: readers check the record.
  (void)Call("DeleteItem", request);
}

Result<DeviceRecord> DynamoDbDeviceStore::Put(const DeviceRecord& record) {
  if (record.remote_id.empty()) return InvalidArgumentError("device record without remote_id");
  if (record.version < 0) return InvalidArgumentError("negative version for device " + record.remote_id);
  if (record.remote_id.size() > kMaxSortKeyBytes) {
    return InvalidArgumentError("device remote_id of " + std::to_string(record.remote_id.size()) +
                                " bytes: DynamoDB sort keys allow at most 1024");
  }
  const std::vector<std::string> rcpns = RcpnKeys(record);
  if (rcpns.size() > kMaxInverterRcpns) {
    return InvalidArgumentError("device " + record.remote_id + " lists " + std::to_string(rcpns.size()) +
                                " distinct inverter RCP numbers; the DynamoDB store indexes at most " +
                                std::to_string(kMaxInverterRcpns));
  }
  for (const auto& key : rcpns) {
    if (key.size() + 2 > kMaxPartitionKeyBytes) {
      return InvalidArgumentError("device " + record.remote_id + ": an inverter RCP number longer than 2046 bytes");
    }
  }
  const std::string site = SiteKey(record);
  if (site.size() + 2 > kMaxPartitionKeyBytes) {
    return InvalidArgumentError("device " + record.remote_id + ": a site id longer than 2046 bytes");
  }

  Status last;
  for (int attempt = 1; attempt <= kWriteAttempts; ++attempt) {
    if (attempt > 1) PauseBeforeAttempt(attempt, static_cast<std::uint64_t>(NewId()));
    auto raw = ReadRaw(record.remote_id);
    if (!raw.ok()) return raw.status();
    const bool exists = raw->record_item.has_value();
    if (record.version == 0 && exists) return AbortedError("device " + record.remote_id + " already exists");
    if (record.version > 0 && (!exists || raw->version() != record.version)) {
      return AbortedError("device " + record.remote_id + " is no longer at version " + std::to_string(record.version));
    }
    const std::int64_t incarnation = exists ? raw->incarnation() : NewId();
    DeviceRecord stored = record;
    stored.version = record.version + 1;
    const json record_item = RecordItem(stored, incarnation);
    if (const std::size_t bytes = ItemBytes(record_item); bytes > kMaxItemBytes) {
      return InvalidArgumentError("device " + record.remote_id + " is " + std::to_string(bytes) +
                                  " bytes as a DynamoDB item; DynamoDB's limit is 409600 (400 KB)");
    }
    const std::vector<std::string> old_rcpns = exists ? raw->rcpns() : std::vector<std::string>();
    const std::string old_site = exists ? raw->site() : std::string();

    // 1. The index items of the keys the record gains, before the record names them, so that a
    //    consistent reader never meets a record without its index items.
    for (const auto& rcpn : rcpns) {
      if (std::find(old_rcpns.begin(), old_rcpns.end(), rcpn) != old_rcpns.end()) continue;
      PWRCELL_RETURN_IF_ERROR(PutIndexItem(RcpnPartition(rcpn), record.remote_id, incarnation, stored.version)
                                  .WithContext("indexing device " + record.remote_id));
    }
    if (!site.empty() && site != old_site) {
      PWRCELL_RETURN_IF_ERROR(PutIndexItem(SitePartition(site), record.remote_id, incarnation, stored.version)
                                  .WithContext("indexing device " + record.remote_id));
    }

    // 2. The record: the one conditional write that decides.
    json put = {{"TableName", table_}, {"Item", record_item}};
    if (record.version == 0) {
      put["ConditionExpression"] = "attribute_not_exists(#pk)";
      put["ExpressionAttributeNames"] = {{"#pk", "pk"}};
    } else {
      put["ConditionExpression"] = "#ver = :ver";
      put["ExpressionAttributeNames"] = {{"#ver", "ver"}};
      put["ExpressionAttributeValues"] = {{":ver", N(record.version)}};
    }
    auto written = Call("PutItem", put);
    if (!written.ok()) {
      if (written.status().code() != StatusCode::kAborted) {
        return written.status().WithContext("writing device " + record.remote_id);
      }
      last = written.status();  // the next read tells which condition failed
      continue;
    }

    // 3. The hot fields, merged (ports/device_store.h, "Hot fields").
    auto hot = MergeHot(stored, incarnation, std::move(raw).value());
    if (!hot.ok()) {
      return hot.status().WithContext("device " + record.remote_id + " was written at version " +
                                      std::to_string(stored.version) + " but not its hot fields");
    }
    ApplyHot(stored, *hot);

    // 4. The index items of the keys the record lost.
    for (const auto& rcpn : old_rcpns) {
      if (std::binary_search(rcpns.begin(), rcpns.end(), rcpn)) continue;
      DropIndexItem(RcpnPartition(rcpn), record.remote_id, incarnation, stored.version);
    }
    if (!old_site.empty() && old_site != site) {
      DropIndexItem(SitePartition(old_site), record.remote_id, incarnation, stored.version);
    }
    return stored;
  }
  return AbortedError("device " + record.remote_id + " kept changing while it was written: " + last.message());
}

Result<Hot> DynamoDbDeviceStore::MergeHot(const DeviceRecord& stored, std::int64_t incarnation, Raw raw) {
  // The record's hot fields over the stored ones of its incarnation (none for a new record).
  for (int attempt = 1;; ++attempt) {
    const bool same_incarnation = raw.hot && raw.hot->incarnation == incarnation;
    const Hot current = same_incarnation ? *raw.hot : Hot{incarnation, 0, std::nullopt, {}};
    const Hot merged = HotOf(MergeHotFields(stored, current), incarnation);
    // Nothing to write: the stored item already holds it (or there is none and nothing to hold).
    if (same_incarnation ? merged.SameFields(current) : NoHotFields(merged)) return current;
    const Status written =
        WriteHot(stored.remote_id, merged, raw.hot ? std::optional<std::int64_t>(raw.hot->counter) : std::nullopt);
    if (written.ok()) return merged;
    if (written.code() != StatusCode::kAborted) return written;
    if (attempt >= kWriteAttempts) return AbortedError("its hot fields kept changing: " + written.message());
    // RecordHeard wrote in between: merge with what it wrote.
    auto read = ReadRaw(stored.remote_id);
    if (!read.ok()) return read.status();
    // Removed or replaced since: its hot fields are not this record's to write.
    if (!read->record_item || read->incarnation() != incarnation) return current;
    raw = std::move(read).value();
  }
}

Status DynamoDbDeviceStore::Remove(const std::string& remote_id, std::int64_t expected_version) {
  if (remote_id.empty() || remote_id.size() > kMaxSortKeyBytes) return NotFoundError("no device " + remote_id);
  Status last;
  for (int attempt = 1; attempt <= kWriteAttempts; ++attempt) {
    if (attempt > 1) PauseBeforeAttempt(attempt, static_cast<std::uint64_t>(NewId()));
    auto raw = ReadRaw(remote_id);
    if (!raw.ok()) return raw.status();
    if (!raw->record_item) return NotFoundError("no device " + remote_id);
    if (raw->version() != expected_version) {
      return AbortedError("device " + remote_id + " is no longer at version " + std::to_string(expected_version));
    }
    const std::int64_t incarnation = raw->incarnation();
    auto removed = Call("DeleteItem", {{"TableName", table_},
                                       {"Key", Key(DevicePartition(remote_id), kRecordSort)},
                                       {"ConditionExpression", "#ver = :ver"},
                                       {"ExpressionAttributeNames", {{"#ver", "ver"}}},
                                       {"ExpressionAttributeValues", {{":ver", N(expected_version)}}}});
    if (!removed.ok()) {
      if (removed.status().code() != StatusCode::kAborted)
        return removed.status().WithContext("removing device " + remote_id);
      last = removed.status();
      continue;
    }
    // The record is gone; what it owned goes after it. Each of these is conditioned on the
    // incarnation, so that a record created again under the id meanwhile keeps its own; one left
    // behind is ignored by every reader (a hot item of another incarnation, a hint the record does
    // not list).
    json hot_delete = {{"TableName", table_},
                       {"Key", Key(DevicePartition(remote_id), kHotSort)},
                       {"ConditionExpression", "#inc = :inc"},
                       {"ExpressionAttributeNames", {{"#inc", "inc"}}},
                       {"ExpressionAttributeValues", {{":inc", N(incarnation)}}}};
    (void)Call("DeleteItem", hot_delete);
    for (const auto& rcpn : raw->rcpns()) DropIndexItem(RcpnPartition(rcpn), remote_id, incarnation, std::nullopt);
    if (const std::string site = raw->site(); !site.empty()) {
      DropIndexItem(SitePartition(site), remote_id, incarnation, std::nullopt);
    }
    return Status::Ok();
  }
  return AbortedError("device " + remote_id + " kept changing while it was removed: " + last.message());
}

}  // namespace pwrcell::adapters::aws
