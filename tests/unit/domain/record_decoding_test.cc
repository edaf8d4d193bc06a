#include "domain/record_decoding.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace pwrcell::domain {
namespace {

using pwrcell::ces::v1::EnergyRecordSet;

constexpr char kRealRecord[] = R"pb(
  inverterId: "000100007010"
  isHighFrequency: false
  gatewayInfo { gateway_id: "gw-7010" gateway_type: GATEWAY_TYPE_BEACON }
  systemFamily: SYSTEM_FAMILY_PWRCELL_R2
  energyRecord {
    currentTimestamp: 1763800000.5
    previousTimestamp: 1763799700
    sysMode: SELF_SUPPLY
    inverterState: 2080
    acConversionChecksum: -42
    channel {
      channel: 1
      channelType: NET
      deviceId: "000100007010"
      realPower_W: -1200
      realPower_Wf: -1200.5
      importedEnergy_Ws: 2123800000
      exportedEnergy_Ws: 1943800000
      voltage_V: 240.5
      anomalyCodeList: [ IMPORT_ENERGY_EXCEEDED, EXPORT_ENERGY_EXCEEDED ]
    }
    channel {
      channel: 10
      channelType: STORAGE
      deviceId: "000100008010"
      deviceType: BATTERY
      realPower_W: 1500
      soc: 57.3
      soh: 98.25
      voltage_V: 380.5
      importedEnergy_Ws: 1799800000
      exportedEnergy_Ws: 1835800000
      isRevenueGrade: true
    }
  }
  energyRecord {
    currentTimestamp: 1763800300
    previousTimestamp: 1763800000.5
    sysMode: GRID_TIE
    inverterState: 28688
    channel { channel: 20 channelType: GENERATION deviceId: "000100003010" realPower_W: 2000 voltage_V: 350.25 }
  }
)pb";

EnergyRecordSet RealRecord() {
  EnergyRecordSet set;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(kRealRecord, &set));
  return set;
}

// The smallest usable record, so that placeholders can be found unambiguously in its bytes.
EnergyRecordSet MinimalRecord(const std::string& inverter_id, const std::string& device_id = "dev") {
  EnergyRecordSet set;
  set.set_inverterid(inverter_id);
  auto* record = set.add_energyrecord();
  record->set_currenttimestamp(1763800000);
  auto* channel = record->add_channel();
  channel->set_channeltype(pwrcell::ces::v1::STORAGE);
  channel->set_deviceid(device_id);
  return set;
}

// The wire bytes of `set` with the one occurrence of `placeholder` replaced by `bytes` of the same
// length: how a record with raw, possibly invalid UTF-8 in a string field is made without asking
// protobuf's serializer (which would complain about it on stderr).
std::string ReplaceInWire(const EnergyRecordSet& set, const std::string& placeholder, const std::string& bytes) {
  EXPECT_EQ(placeholder.size(), bytes.size());
  std::string wire = set.SerializeAsString();
  const auto at = wire.find(placeholder);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(wire.find(placeholder, at + 1), std::string::npos) << "placeholder must occur once";
  return wire.replace(at, placeholder.size(), bytes);
}

// Decodes while capturing stderr, and fails the test if anything was written there.
Result<EnergyRecordSet> DecodeQuietly(std::string_view bytes) {
  testing::internal::CaptureStderr();
  auto result = DecodeRecordSet(bytes);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "") << "decoding wrote to stderr";
  return result;
}

void ExpectInvalid(const Result<EnergyRecordSet>& result, const std::string& message) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), message);
  EXPECT_FALSE(result.status().IsRetryable());
}

TEST(RecordDecoding, ValidRecordRoundTrips) {
  const EnergyRecordSet original = RealRecord();
  const std::string wire = original.SerializeAsString();
  auto decoded = DecodeQuietly(wire);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*decoded, original));
  EXPECT_EQ(decoded->SerializeAsString(), wire);
  EXPECT_EQ(decoded->inverterid(), "000100007010");
  ASSERT_EQ(decoded->energyrecord_size(), 2);
  EXPECT_EQ(decoded->energyrecord(0).currenttimestamp(), 1763800000.5);
  EXPECT_EQ(decoded->energyrecord(0).channel(1).soc(), 57.3F);
}

TEST(RecordDecoding, EmptyInputIsInvalid) {
  ExpectInvalid(DecodeRecordSet(""), "empty record");
}

TEST(RecordDecoding, GarbageIsNotAValidRecord) {
  // Field 1 declared as a 64-bit double but only 3 bytes follow.
  ExpectInvalid(DecodeQuietly(std::string("\x09\x01\x02\x03", 4)),
                "not a valid EnergyRecordSet (truncated or malformed)");
  // An end-group tag with no group open.
  ExpectInvalid(DecodeQuietly("\x0c"), "not a valid EnergyRecordSet (truncated or malformed)");
  // Length prefix larger than the data.
  ExpectInvalid(DecodeQuietly("\x32\x7f"
                              "abc"),
                "not a valid EnergyRecordSet (truncated or malformed)");
}

TEST(RecordDecoding, EveryPrefixOfARealRecordFailsOrDecodesWithoutCrashingOrLogging) {
  const std::string wire = RealRecord().SerializeAsString();
  ASSERT_GT(wire.size(), 100U);
  int decoded = 0;
  int rejected = 0;
  testing::internal::CaptureStderr();
  for (std::size_t length = 0; length <= wire.size(); ++length) {
    const auto result = DecodeRecordSet(std::string_view(wire).substr(0, length));
    if (result.ok()) {
      ++decoded;
      // Whatever decodes has passed every check.
      EXPECT_FALSE(result->inverterid().empty());
      EXPECT_GT(result->energyrecord_size(), 0);
    } else {
      ++rejected;
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << "prefix " << length;
    }
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_TRUE(DecodeRecordSet(wire).ok());
  // Cutting between fields can leave a shorter but complete record; cutting inside one cannot.
  EXPECT_GE(decoded, 1);
  EXPECT_GT(rejected, static_cast<int>(wire.size()) / 2);
}

TEST(RecordDecoding, RandomBytesNeverCrashOrLog) {
  std::mt19937 random(20251122);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(1, 300);
  int rejected = 0;
  testing::internal::CaptureStderr();
  for (int i = 0; i < 4000; ++i) {
    std::string bytes(static_cast<std::size_t>(length(random)), '\0');
    for (auto& c : bytes) c = static_cast<char>(byte(random));
    const auto result = DecodeRecordSet(bytes);
    if (!result.ok()) {
      ++rejected;
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_GT(rejected, 3900);
}

// Corrupting a few bytes of a real record reaches deeper into the parser (and into the string
// fields) than pure noise does.
TEST(RecordDecoding, CorruptedRealRecordsNeverCrashOrLog) {
  const std::string wire = RealRecord().SerializeAsString();
  std::mt19937 random(7010);
  std::uniform_int_distribution<std::size_t> position(0, wire.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> flips(1, 4);
  int rejected = 0;
  testing::internal::CaptureStderr();
  for (int i = 0; i < 4000; ++i) {
    std::string bytes = wire;
    for (int n = flips(random); n > 0; --n) bytes[position(random)] = static_cast<char>(byte(random));
    const auto result = DecodeRecordSet(bytes);
    if (!result.ok()) {
      ++rejected;
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_GT(rejected, 0);
  EXPECT_LT(rejected, 4000);
}

TEST(RecordDecoding, InvalidUtf8IsRejectedWithTheFieldNameAndNothingOnStderr) {
  ExpectInvalid(DecodeQuietly(ReplaceInWire(MinimalRecord("~~~~"), "~~~~",
                                            "ab\xff"
                                            "c")),
                "not a valid EnergyRecordSet: pwrcell.ces.v1.EnergyRecordSet.inverterId is not valid UTF-8");
  ExpectInvalid(DecodeQuietly(ReplaceInWire(MinimalRecord("inv", "~~~"), "~~~", "\xed\xa0\x80")),
                "not a valid EnergyRecordSet: pwrcell.ces.v1.ChannelSample.deviceId is not valid UTF-8");
  EnergyRecordSet with_gateway = MinimalRecord("inv");
  with_gateway.mutable_gatewayinfo()->set_gateway_id("~~");
  ExpectInvalid(DecodeQuietly(ReplaceInWire(with_gateway, "~~", "\xc0\xaf")),
                "not a valid EnergyRecordSet: pwrcell.ces.v1.GatewayInfo.gateway_id is not valid UTF-8");
}

TEST(RecordDecoding, ValidMultiByteUtf8IsAccepted) {
  const auto result = DecodeQuietly(MinimalRecord("inv", "Zähler-€-𝄞").SerializeAsString());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->energyrecord(0).channel(0).deviceid(), "Zähler-€-𝄞");
}

// Our UTF-8 check must reject exactly what protobuf rejects: more lenient and protobuf would log,
// stricter and we would drop records protobuf accepts. Compared on the boundary cases of each
// sequence length.
TEST(RecordDecoding, Utf8CheckAgreesWithProtobufOnBoundarySequences) {
  std::vector<std::string> sequences;
  sequences.reserve(2048);
  for (int a = 0; a < 256; ++a) sequences.emplace_back(1, static_cast<char>(a));
  const std::vector<int> edges = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
  for (int a = 0x80; a < 256; ++a) {
    for (int b : edges) sequences.push_back({static_cast<char>(a), static_cast<char>(b)});
  }
  for (int a = 0xe0; a < 0xf0; ++a) {
    for (int b : edges) {
      for (int c : {0x7f, 0x80, 0xbf, 0xc0}) {
        sequences.push_back({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
      }
    }
  }
  for (int a = 0xf0; a < 0xf8; ++a) {
    for (int b : edges) {
      for (int c : {0x7f, 0x80, 0xbf}) {
        for (int d : {0x80, 0xc0}) {
          sequences.push_back({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)});
        }
      }
    }
  }
  int accepted = 0;
  for (const auto& sequence : sequences) {
    const std::string placeholder(sequence.size(), '~');
    const std::string wire = ReplaceInWire(MinimalRecord("inv", placeholder), placeholder, sequence);
    EnergyRecordSet by_protobuf;
    testing::internal::CaptureStderr();  // protobuf logs the ones it rejects; that is its business here
    const bool protobuf_ok = by_protobuf.ParseFromString(wire);
    testing::internal::GetCapturedStderr();
    const auto ours = DecodeQuietly(wire);
    EXPECT_EQ(ours.ok(), protobuf_ok) << "bytes " << testing::PrintToString(sequence);
    accepted += ours.ok() ? 1 : 0;
  }
  // Both outcomes occur, so the comparison means something.
  EXPECT_GT(accepted, 128);
  EXPECT_LT(accepted, static_cast<int>(sequences.size()) - 500);
}

TEST(RecordDecoding, EmptyInverterIdIsInvalid) {
  ExpectInvalid(DecodeQuietly(MinimalRecord("").SerializeAsString()), "inverterId is empty");
}

TEST(RecordDecoding, NoEnergyRecordIsInvalid) {
  EnergyRecordSet set;
  set.set_inverterid("000100007010");
  ExpectInvalid(DecodeQuietly(set.SerializeAsString()), "no energyRecord");
}

TEST(RecordDecoding, UnusableTimestampsAreInvalidAndNamed) {
  const std::vector<std::pair<double, std::string>> cases = {
      {0.0, "0"},
      {-1763800000.0, "-1763800000"},
      {std::numeric_limits<double>::quiet_NaN(), "nan"},
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
      {1e300, "1e+300"},
  };
  for (const auto& [seconds, printed] : cases) {
    EnergyRecordSet set = MinimalRecord("000100007010");
    set.add_energyrecord()->set_currenttimestamp(seconds);
    ExpectInvalid(DecodeQuietly(set.SerializeAsString()),
                  "energyRecord[1].currentTimestamp is not a usable time (" + printed + ")");
  }
  // A record with no currentTimestamp at all reads as 0.
  EnergyRecordSet set = MinimalRecord("000100007010");
  set.mutable_energyrecord(0)->clear_currenttimestamp();
  ExpectInvalid(DecodeQuietly(set.SerializeAsString()), "energyRecord[0].currentTimestamp is not a usable time (0)");
}

TEST(RecordDecoding, UsableTimestampBounds) {
  EXPECT_FALSE(IsUsableRecordTimestamp(0));
  EXPECT_TRUE(IsUsableRecordTimestamp(0.001));
  EXPECT_TRUE(IsUsableRecordTimestamp(1763800000.25));
  EXPECT_TRUE(IsUsableRecordTimestamp(253402300799.0));  // 9999-12-31T23:59:59Z
  EXPECT_FALSE(IsUsableRecordTimestamp(253402300800.0));
  EXPECT_FALSE(IsUsableRecordTimestamp(std::nan("")));
}

// Newer senders may add fields and channel types; proto3 keeps them and the record still decodes
// (the mapping counts unknown channel types as unmapped).
TEST(RecordDecoding, UnknownFieldsAndEnumValuesStillDecode) {
  EnergyRecordSet set = MinimalRecord("000100007010");
  set.mutable_energyrecord(0)->mutable_channel(0)->set_channeltype(static_cast<pwrcell::ces::v1::ChannelType>(42));
  std::string wire = set.SerializeAsString();
  wire += std::string("\xa0\x06\x07", 3);              // field 100, varint 7
  wire += std::string("\xaa\x06\x03\xff\xfe\xfd", 6);  // field 101, 3 bytes that are not UTF-8 (but no declared string)
  const auto result = DecodeQuietly(wire);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(static_cast<int>(result->energyrecord(0).channel(0).channeltype()), 42);
}

}  // namespace
}  // namespace pwrcell::domain
