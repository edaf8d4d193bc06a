// The SecretStore contract (ports/secret_store.h), run on every backend in backends.cc (and on
// Secrets Manager in tests/aws/secret_store_backend.cc). Values are JSON text, and a backend may
// give back an equivalent text (the secrets file re-serialises it), so values are compared as
// JSON. Secret ids are unique per test (the AWS backends share one moto server between tests).
//
// What is not here because the backends differ on purpose: Put of an unknown id (the file and
// memory stores create the secret, Secrets Manager answers kNotFound: secrets are made by the
// operator), and Put of a value that is not JSON (the file store refuses it, the others keep it).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends.h"

namespace pwrcell::conformance {
namespace {

using nlohmann::json;

// "<what>_<16 hex digits>": letters, digits and '_' are valid everywhere (Secrets Manager names
// allow /_+=.@- too, but a name ending in '-' and six characters reads as an ARN's suffix).
std::string UniqueId(const std::string& what) {
  static std::mt19937_64 random{std::random_device{}()};
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));  // NOLINT
  return what + "_" + suffix;
}

class SecretStoreConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    concerto_ = UniqueId("ConcertoCredentials");
    ces_ = UniqueId("CesCredentials");
    store_ = backend_->MakeSecretStore({{concerto_, kConcerto}, {ces_, kCes}});
    ASSERT_NE(store_, nullptr);
    other_ = backend_->MakeSecondSecretStore();
    if (!other_) other_ = store_;
  }

  // The secret's value parsed; a failure (and null) when it cannot be read or is not JSON.
  json Read(ports::SecretStore& store, const std::string& id) {
    auto value = store.Get(id);
    EXPECT_TRUE(value.ok()) << id << ": " << value.status().ToString();
    if (!value.ok()) return nullptr;
    json parsed = json::parse(*value, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << id << " holds text that is not JSON";
    return parsed;
  }
  json Read(const std::string& id) { return Read(*store_, id); }

  void MustPut(const std::string& id, const std::string& value) {
    const Status put = store_->Put(id, value);
    ASSERT_TRUE(put.ok()) << id << ": " << put.ToString();
  }

  static constexpr char kConcerto[] = R"({"email": "adapter@example.com", "password": "p4ss-w0rd"})";
  static constexpr char kCes[] = R"({"api_key": "ces-key-123"})";

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<ports::SecretStore> store_;
  std::shared_ptr<ports::SecretStore> other_;  // a second object, or store_ again
  std::string concerto_;
  std::string ces_;
};

TEST_P(SecretStoreConformance, GetReturnsTheStoredValues) {
  EXPECT_EQ(Read(concerto_), json::parse(kConcerto));
  EXPECT_EQ(Read(ces_), json::parse(kCes));
}

TEST_P(SecretStoreConformance, AnUnknownIdIsNotFoundAndNamed) {
  const std::string unknown = UniqueId("NoSuchSecret");
  auto value = store_->Get(unknown);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kNotFound) << value.status().ToString();
  EXPECT_NE(value.status().message().find(unknown), std::string::npos) << value.status().ToString();
  // Asking for it changed nothing.
  EXPECT_EQ(Read(concerto_), json::parse(kConcerto));
}

TEST_P(SecretStoreConformance, PutThenGetReturnsTheValue) {
  const json written = {{"email", "adapter@example.com"},
                        {"password", "p4ss-w0rd"},
                        {"token", "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
                        {"token_expires_at", "2026-11-26T08:00:00Z"}};
  MustPut(concerto_, written.dump());
  EXPECT_EQ(Read(concerto_), written);
  EXPECT_EQ(Read(ces_), json::parse(kCes));  // the other secret is untouched
}

TEST_P(SecretStoreConformance, PutReplacesTheWholeValue) {
  MustPut(concerto_, R"({"token": "first", "extra": 1})");
  MustPut(concerto_, R"({"token": "second"})");
  EXPECT_EQ(Read(concerto_), json::parse(R"({"token": "second"})"));
  MustPut(concerto_, kConcerto);
  EXPECT_EQ(Read(concerto_), json::parse(kConcerto));
}

TEST_P(SecretStoreConformance, AValueWrittenIsSeenByAnotherInstance) {
  // What makes one Concerto token serve every instance: the write of one is the read of the next.
  MustPut(concerto_, R"({"token": "shared"})");
  EXPECT_EQ(Read(*other_, concerto_), json::parse(R"({"token": "shared"})"));
  const Status put = other_->Put(concerto_, R"({"token": "renewed"})");
  ASSERT_TRUE(put.ok()) << put.ToString();
  EXPECT_EQ(Read(*store_, concerto_), json::parse(R"({"token": "renewed"})"));
}

TEST_P(SecretStoreConformance, JsonUnicodeAndLargeValuesSurvive) {
  const json escapes = {{"quote", "a \"quoted\" \\ back\\slash"},
                        {"control", "tab\there\nnewline"},
                        {"nested", {{"list", {1, 2.5, true, nullptr, "x"}}, {"empty", json::object()}}},
                        {"number", 12345678901234LL}};
  MustPut(concerto_, escapes.dump());
  EXPECT_EQ(Read(concerto_), escapes);

  const json unicode = {{"name", "Zo\xc3\xab M\xc3\xbcller"},             // Zoë Müller
                        {"cjk", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},  // 日本語
                        {"emoji", "\xf0\x9f\x94\x8b\xe2\x9a\xa1"}};       // 🔋⚡
  MustPut(concerto_, unicode.dump());
  EXPECT_EQ(Read(concerto_), unicode);

  // 30 KB: well inside Secrets Manager's 64 KB, larger than any credentials document.
  std::string filler;
  for (int i = 0; filler.size() < 30'000; ++i) filler += std::to_string(i) + ",";
  const json large = {{"token", filler}, {"password", "p"}};
  ASSERT_GT(large.dump().size(), 30'000u);
  MustPut(concerto_, large.dump());
  EXPECT_EQ(Read(concerto_), large);
  EXPECT_EQ(Read(*other_, concerto_), large);
}

TEST_P(SecretStoreConformance, ConcurrentPutsAndGetsSeeWholeValues) {
  // Few writes (Secrets Manager makes a version of each), many reads.
  constexpr int kWriters = 4;
  constexpr int kWritesEach = 4;
  constexpr int kReaders = 4;
  std::set<json> written = {json::parse(kConcerto)};
  std::vector<std::vector<std::string>> planned(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    for (int n = 0; n < kWritesEach; ++n) {
      const json value = {{"writer", w}, {"n", n}, {"token", std::string(200 + 10 * n, static_cast<char>('a' + w))}};
      planned[w].push_back(value.dump());
      written.insert(value);
    }
  }
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    ports::SecretStore* store = w % 2 == 0 ? store_.get() : other_.get();
    threads.emplace_back([&, w, store] {
      for (const std::string& value : planned[w]) {
        const Status put = store->Put(concerto_, value);
        EXPECT_TRUE(put.ok()) << put.ToString();
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    ports::SecretStore* store = r % 2 == 0 ? store_.get() : other_.get();
    threads.emplace_back([&, store] {
      do {
        auto value = store->Get(concerto_);
        ASSERT_TRUE(value.ok()) << value.status().ToString();
        const json parsed = json::parse(*value, nullptr, /*allow_exceptions=*/false);
        EXPECT_EQ(written.count(parsed), 1u) << "a read saw a value nobody wrote (" << value->size() << " bytes)";
        auto ces = store->Get(ces_);
        ASSERT_TRUE(ces.ok()) << ces.status().ToString();
        EXPECT_EQ(json::parse(*ces), json::parse(kCes));
        ++reads;
      } while (writing.load());
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  writing = false;
  for (std::size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_GE(reads.load(), kReaders);
  // The value left is some writer's last.
  const json last = Read(concerto_);
  bool is_a_last_write = false;
  for (int w = 0; w < kWriters; ++w) is_a_last_write |= last == json::parse(planned[w].back());
  EXPECT_TRUE(is_a_last_write) << last.dump().substr(0, 40);
}

TEST_P(SecretStoreConformance, ErrorsNeverContainTheValue) {
  // Calls that some backend refuses: whatever the answer, a refusal does not quote the value.
  const std::string marker = "S3cr3t-" + UniqueId("marker");
  const auto expect_not_quoted = [&](const Status& status, const std::string& call) {
    if (!status.ok()) {
      EXPECT_EQ(status.message().find(marker), std::string::npos) << call << " quoted the value";
      EXPECT_EQ(status.message().find("p4ss-w0rd"), std::string::npos) << call << " quoted another value";
    }
  };
  // Not JSON (the file store refuses it).
  expect_not_quoted(store_->Put(ces_, "not json " + marker), "Put of text");
  // Over Secrets Manager's 65,536 bytes (which it refuses).
  const json oversized = {{"token", marker + std::string(70'000, 'x')}};
  expect_not_quoted(store_->Put(ces_, oversized.dump()), "Put of 70 KB");
  // An id nobody created (Secrets Manager refuses the write, the others create the secret).
  expect_not_quoted(store_->Put(UniqueId("NoSuchSecret"), json{{"password", marker}}.dump()), "Put to a new id");
  expect_not_quoted(store_->Get(UniqueId("NoSuchSecret")).status(), "Get of an unknown id");
  // And the secrets that were there are still readable.
  EXPECT_EQ(Read(concerto_), json::parse(kConcerto));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SecretStoreConformance, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace pwrcell::conformance
