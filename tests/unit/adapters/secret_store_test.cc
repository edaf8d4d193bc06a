#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "adapters/file/file_secret_store.h"
#include "adapters/memory/memory_secret_store.h"

namespace pwrcell::adapters {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassword[] = "hunter2-do-not-print";
constexpr char kApiKey[] = "ces-key-0123456789";

std::string SecretsJson() {
  return std::string(R"({"ConcertoCredentials": {"email": "ops@example.com", "password": ")") + kPassword +
         R"("}, "CesCredentials": {"api_key": ")" + kApiKey + R"("}})";
}

// Expects that no secret value leaks into an error message.
void ExpectNoSecretIn(const std::string& message) {
  EXPECT_THAT(message, Not(HasSubstr(kPassword)));
  EXPECT_THAT(message, Not(HasSubstr(kApiKey)));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));
}

TEST(MemorySecretStore, GetsWhatWasPut) {
  MemorySecretStore store(std::map<std::string, std::string>{{"CesCredentials", R"({"api_key":"k"})"}});
  EXPECT_EQ(*store.Get("CesCredentials"), R"({"api_key":"k"})");
  ASSERT_TRUE(store.Put("CesCredentials", R"({"api_key":"k2"})").ok());
  ASSERT_TRUE(store.Put("ConcertoCredentials", R"({"token":"t"})").ok());
  EXPECT_EQ(*store.Get("CesCredentials"), R"({"api_key":"k2"})");
  EXPECT_EQ(*store.Get("ConcertoCredentials"), R"({"token":"t"})");
}

TEST(MemorySecretStore, UnknownIdIsNotFoundNamingTheId) {
  MemorySecretStore store;
  const auto value = store.Get("ConcertoCredentials");
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(value.status().message(), HasSubstr("ConcertoCredentials"));
}

TEST(MemorySecretStore, ConcurrentPutsAndGetsAreSafe) {
  MemorySecretStore store;
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(store.Put("s" + std::to_string(t), std::to_string(i)).ok());
        ASSERT_TRUE(store.Get("s" + std::to_string(t)).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(*store.Get("s" + std::to_string(t)), "199");
}

class FileSecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir_template = (std::filesystem::temp_directory_path() / "secret_store_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
    path_ = (dir_ / "secrets.json").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void WriteSecrets(const std::string& text, mode_t mode = 0600) {
    std::ofstream(path_, std::ios::trunc) << text;
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
  }

  std::string ReadSecrets() const {
    std::ifstream in(path_);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  mode_t Mode() const {
    struct stat st {};
    EXPECT_EQ(::stat(path_.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  std::unique_ptr<FileSecretStore> OpenOk() {
    auto store = FileSecretStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(FileSecretStoreTest, GetReturnsTheJsonOfTheNamedObject) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  const auto concerto = store->Get("ConcertoCredentials");
  ASSERT_TRUE(concerto.ok()) << concerto.status().ToString();
  EXPECT_EQ(json::parse(*concerto), json({{"email", "ops@example.com"}, {"password", kPassword}}));
  const auto ces = store->Get("CesCredentials");
  ASSERT_TRUE(ces.ok());
  EXPECT_EQ(json::parse(*ces), json({{"api_key", kApiKey}}));
}

TEST_F(FileSecretStoreTest, UnknownIdIsNotFoundNamingTheIdOnly) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  const auto value = store->Get("AwsCredentials");
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(value.status().message(), HasSubstr("AwsCredentials"));
  ExpectNoSecretIn(value.status().message());
}

TEST_F(FileSecretStoreTest, MissingFileIsNotFoundNamingThePath) {
  const auto store = FileSecretStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(FileSecretStoreTest, FileAccessibleByGroupOrOthersIsRefused) {
  for (const mode_t mode : {0644, 0640, 0604, 0620, 0602, 0660, 0666, 0601}) {
    WriteSecrets(SecretsJson(), mode);
    const auto store = FileSecretStore::Open(path_);
    ASSERT_FALSE(store.ok()) << std::oct << mode;
    EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
    EXPECT_THAT(store.status().message(), HasSubstr("chmod 600 " + path_));
    ExpectNoSecretIn(store.status().message());
  }
  WriteSecrets(SecretsJson(), 0400);  // owner-only read is fine
  EXPECT_TRUE(FileSecretStore::Open(path_).ok());
}

TEST_F(FileSecretStoreTest, PermissionsAreCheckedOnEveryRead) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  const auto value = store->Get("CesCredentials");
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(value.status().message(), HasSubstr("chmod 600"));
  EXPECT_EQ(store->Put("CesCredentials", R"({"api_key": "new"})").code(), StatusCode::kPermissionDenied);
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  EXPECT_EQ(json::parse(*store->Get("CesCredentials")), json({{"api_key", kApiKey}}));  // Put changed nothing
}

TEST_F(FileSecretStoreTest, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  WriteSecrets(SecretsJson(), 0200);
  const auto store = FileSecretStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(FileSecretStoreTest, MalformedJsonIsInvalidArgumentWithoutTheContent) {
  // Each is broken right after (or inside) a secret, where a parser would quote it.
  for (const std::string& text :
       {std::string(R"({"ConcertoCredentials": {"password": ")") + kPassword,
        std::string(R"({"ConcertoCredentials": {"password": )") + kPassword + "}}",
        std::string("{\n  \"CesCredentials\": {\"api_key\": \"") + kApiKey + "\",,}\n}",
        std::string(R"({"CesCredentials": {"api_key": ")") + kApiKey + "\"}} trailing hunter2"}) {
    WriteSecrets(text);
    const auto store = FileSecretStore::Open(path_);
    ASSERT_FALSE(store.ok()) << text;
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(store.status().message(), HasSubstr(path_));
    EXPECT_THAT(store.status().message(), HasSubstr("line "));
    ExpectNoSecretIn(store.status().message());
  }
}

TEST_F(FileSecretStoreTest, ParseErrorGivesTheLine) {
  WriteSecrets(std::string("{\n  \"CesCredentials\": {\"api_key\": \"") + kApiKey + "\",,}\n}");
  const auto store = FileSecretStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("line 2,"));
}

TEST_F(FileSecretStoreTest, NotAnObjectIsInvalidArgument) {
  WriteSecrets(std::string("[\"") + kPassword + "\"]");
  const auto store = FileSecretStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  ExpectNoSecretIn(store.status().message());
}

TEST_F(FileSecretStoreTest, PutThenGetRoundTripsAndKeepsTheOtherSecrets) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  const json with_token = {{"email", "ops@example.com"}, {"password", kPassword}, {"token", "eyJ.fresh"}};
  ASSERT_TRUE(store->Put("ConcertoCredentials", with_token.dump()).ok());
  EXPECT_EQ(json::parse(*store->Get("ConcertoCredentials")), with_token);
  EXPECT_EQ(json::parse(*store->Get("CesCredentials")), json({{"api_key", kApiKey}}));
  ASSERT_TRUE(store->Put("NewSecret", R"({"a": 1})").ok());
  EXPECT_EQ(json::parse(*store->Get("NewSecret")), json({{"a", 1}}));
  // The file on disk holds all three, as JSON.
  const json on_disk = json::parse(ReadSecrets());
  EXPECT_EQ(on_disk.size(), 3u);
  EXPECT_EQ(on_disk["ConcertoCredentials"], with_token);
}

TEST_F(FileSecretStoreTest, RewriteIsAtomicAndKeepsMode0600) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  struct stat before {};
  ASSERT_EQ(::stat(path_.c_str(), &before), 0);
  ASSERT_TRUE(store->Put("ConcertoCredentials", R"({"token": "t1"})").ok());
  EXPECT_EQ(Mode(), 0600u);
  struct stat after {};
  ASSERT_EQ(::stat(path_.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);  // a new file renamed into place, not rewritten in place
  // No temporary file left behind.
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"secrets.json"});
  // Still usable by a fresh store (another worker, or the next start).
  EXPECT_TRUE(FileSecretStore::Open(path_).ok());
}

TEST_F(FileSecretStoreTest, PutThroughASymlinkReplacesTheFileItLeadsToAndKeepsTheLink) {
  WriteSecrets(SecretsJson());
  const std::string link = (dir_ / "link.json").string();
  ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
  auto store = FileSecretStore::Open(link);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Put("ConcertoCredentials", R"({"token": "through-the-link"})").ok());
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced by a regular file";
  EXPECT_EQ(json::parse(ReadSecrets())["ConcertoCredentials"], json({{"token", "through-the-link"}}));
  EXPECT_EQ(Mode(), 0600u);
  EXPECT_EQ(json::parse(ReadSecrets())["CesCredentials"], json({{"api_key", kApiKey}}));
}

TEST_F(FileSecretStoreTest, ASymlinkToAFileReadableByOthersIsRefused) {
  WriteSecrets(SecretsJson(), 0644);
  const std::string link = (dir_ / "link.json").string();
  ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
  const auto store = FileSecretStore::Open(link);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(FileSecretStoreTest, ModeIsTightenedTo0600EvenFromOwnerReadOnly) {
  WriteSecrets(SecretsJson(), 0400);
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("CesCredentials", R"({"api_key": "k"})").ok());
  EXPECT_EQ(Mode(), 0600u);
}

TEST_F(FileSecretStoreTest, TwoStoresOnOneFileShareAFreshToken) {
  WriteSecrets(SecretsJson());
  auto worker_a = OpenOk();
  auto worker_b = OpenOk();
  ASSERT_NE(worker_a, nullptr);
  ASSERT_NE(worker_b, nullptr);
  ASSERT_TRUE(worker_a->Put("ConcertoCredentials", R"({"token": "shared"})").ok());
  EXPECT_EQ(json::parse(*worker_b->Get("ConcertoCredentials")), json({{"token", "shared"}}));
}

TEST_F(FileSecretStoreTest, GetSeesAnOperatorsEdit) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  WriteSecrets(R"({"CesCredentials": {"api_key": "rotated"}})");
  EXPECT_EQ(json::parse(*store->Get("CesCredentials")), json({{"api_key", "rotated"}}));
}

TEST_F(FileSecretStoreTest, PutOfInvalidJsonIsRefusedWithoutEchoingIt) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  const Status status = store->Put("ConcertoCredentials", std::string("{\"password\": ") + kPassword);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("ConcertoCredentials"));
  ExpectNoSecretIn(status.message());
  EXPECT_EQ(json::parse(ReadSecrets()), json::parse(SecretsJson()));  // untouched
}

TEST_F(FileSecretStoreTest, PutAfterTheFileVanishedIsNotFound) {
  WriteSecrets(SecretsJson());
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  std::filesystem::remove(path_);
  EXPECT_EQ(store->Put("CesCredentials", "{}").code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Get("CesCredentials").status().code(), StatusCode::kNotFound);
}

TEST_F(FileSecretStoreTest, ConcurrentPutsLoseNothing) {
  WriteSecrets("{}");
  auto store = OpenOk();
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(store->Put("s" + std::to_string(t) + "_" + std::to_string(i), json({{"i", i}}).dump()).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(json::parse(ReadSecrets()).size(), 40u);
  EXPECT_EQ(Mode(), 0600u);
}

}  // namespace
}  // namespace pwrcell::adapters
