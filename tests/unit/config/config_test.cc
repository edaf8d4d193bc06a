#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pwrcell::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

Result<Config> Load(std::string_view text, const Environment& env = EmptyEnvironment()) {
  return LoadConfigString(text, "deployment.toml", env);
}

// The message of a load that must fail with kInvalidArgument.
std::string Error(std::string_view text, const Environment& env = EmptyEnvironment()) {
  const auto result = Load(text, env);
  EXPECT_FALSE(result.ok()) << text;
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  return result.status().message();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string ExamplePath() {
  return std::string(PWRCELL_SOURCE_DIR) + "/deployment_example.toml";
}

TEST(ConfigDefaults, EveryDefaultIsTheDocumentedOne) {
  const Config c;
  EXPECT_EQ(c.adapter.name, "pwrcell-adapter");
  EXPECT_FALSE(c.adapter.auto_commissioning);
  EXPECT_EQ(c.concerto.root_url, "http://127.0.0.1:8080");
  EXPECT_EQ(c.concerto.credentials_secret, "ConcertoCredentials");
  EXPECT_EQ(c.concerto.timeout_s, 30s);
  EXPECT_EQ(c.concerto.workers, 10);
  EXPECT_EQ(c.concerto.max_retries, 3);
  EXPECT_EQ(c.concerto.max_requests_per_second, 25.0);
  EXPECT_EQ(c.concerto.token_renewal_s, 30min);
  EXPECT_EQ(c.concerto.page_size, 100);
  EXPECT_EQ(c.ces.root_url, "http://127.0.0.1:8081");
  EXPECT_EQ(c.ces.credentials_secret, "CesCredentials");
  EXPECT_EQ(c.ces.timeout_s, 30s);
  EXPECT_EQ(c.ces.workers, 4);
  EXPECT_EQ(c.ces.max_retries, 3);
  EXPECT_EQ(c.ces.max_requests_per_second, 10.0);
  EXPECT_EQ(c.ces.status_batch_size, 100);
  EXPECT_EQ(c.schedule.registrar_poll_s, 60s);
  EXPECT_EQ(c.schedule.ces_state_poll_s, 15min);
  EXPECT_EQ(c.schedule.liveness_sweep_s, 60s);
  EXPECT_EQ(c.schedule.metadata_refresh_s, 24h);
  EXPECT_EQ(c.liveness.offline_timeout_s, 15min);
  EXPECT_EQ(c.liveness.record_interval_s, 5min);
  EXPECT_EQ(c.queues.visibility_timeout_s, 60s);
  EXPECT_EQ(c.queues.max_receives, 5);
  EXPECT_EQ(c.secrets.backend, "file");
  EXPECT_EQ(c.secrets.path, "secrets.json");
  EXPECT_EQ(c.storage.path, "pwrcell-adapter.db");
  EXPECT_EQ(c.telemetry.listen, (ListenAddress{"127.0.0.1", 8070}));
  EXPECT_EQ(c.telemetry.max_body_bytes, 5242880);
  EXPECT_EQ(c.telemetry.max_records_per_request, 10000);
  EXPECT_EQ(c.telemetry.access_key_secret, "");           // open, as before access keys existed
  EXPECT_EQ(c.telemetry.firehose_access_key_secret, "");  // /v1/firehose off
  EXPECT_EQ(c.telemetry.tls_cert_file, "");               // plain HTTP
  EXPECT_EQ(c.telemetry.tls_key_file, "");
  EXPECT_EQ(c.admin.listen, (ListenAddress{"127.0.0.1", 8071}));
  EXPECT_EQ(c.simulated.record_interval_s, 5min);
}

TEST(ConfigDefaults, AnEmptyFileGivesTheDefaults) {
  const auto c = Load("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, Config{});
}

TEST(ConfigDefaults, EmptySectionsGiveTheDefaults) {
  const auto c = Load("[adapter]\n[concerto]\n[ces]\n[schedule]\n[liveness]\n[queues]\n[secrets]\n[storage]\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, Config{});
}

TEST(ConfigExample, LoadsAndEqualsTheDefaults) {
  const auto c = LoadConfigFile(ExamplePath(), EmptyEnvironment());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, Config{});
}

TEST(ConfigExample, SetsEveryKeyAndNamesEveryEnvironmentVariable) {
  const std::string text = ReadText(ExamplePath());
  const toml::table example = toml::parse(text, std::string_view(ExamplePath()));
  ASSERT_EQ(Keys().size(), 54u);
  for (const KeyInfo& key : Keys()) {
    EXPECT_TRUE(example.at_path(key.section + "." + key.key)) << key.section << "." << key.key;
    EXPECT_THAT(text, HasSubstr(key.env_var));
    if (!key.alias_var.empty()) {
      EXPECT_THAT(text, HasSubstr(key.alias_var + " or " + key.env_var));
    }
  }
}

// Every number's range is written in the example beside its variable, as "MIN..MAX".
TEST(ConfigExample, DocumentsEveryNumbersRange) {
  const std::string text = ReadText(ExamplePath());
  for (const KeyInfo& key : Keys()) {
    const auto between = key.expected.find("between ");
    if (between == std::string::npos) continue;
    std::string range = key.expected.substr(between + 8);
    range = range.substr(0, range.find(" (requests"));
    range.replace(range.find(" and "), 5, "..");
    const auto at = text.rfind(key.env_var);  // its own comment, after the header's examples
    ASSERT_NE(at, std::string::npos) << key.env_var;
    const std::size_t from = at > 400 ? at - 400 : 0;
    EXPECT_THAT(text.substr(from, at - from), HasSubstr(range)) << key.section << "." << key.key;
  }
}

TEST(ConfigExample, TheLocalDeploymentFileLoads) {
  const auto c = LoadConfigFile(std::string(PWRCELL_SOURCE_DIR) + "/deployment.toml", EmptyEnvironment());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->secrets.path, "secrets.json");
  EXPECT_EQ(c->concerto.root_url, "http://127.0.0.1:8080");
  EXPECT_EQ(c->ces.root_url, "http://127.0.0.1:8081");
  EXPECT_EQ(c->storage.path, "pwrcell-adapter.db");
}

TEST(ConfigFile, ReadsEveryKind) {
  const auto c = Load(R"(
[adapter]
name = "utility-a"
auto_commissioning = true
[concerto]
root_url = "https://concerto.example.com/"
timeout_s = 1
page_size = 500
max_requests_per_second = 2.5
[ces]
max_requests_per_second = 7
status_batch_size = 1
[telemetry]
listen = "[::1]:0"
[admin]
listen = "0.0.0.0:65535"
allow_remote = true
access_key_secret = "AdminKey"
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->adapter.name, "utility-a");
  EXPECT_TRUE(c->adapter.auto_commissioning);
  EXPECT_EQ(c->concerto.root_url, "https://concerto.example.com");  // trailing slash dropped
  EXPECT_EQ(c->concerto.timeout_s, 1s);
  EXPECT_EQ(c->concerto.page_size, 500);
  EXPECT_EQ(c->concerto.max_requests_per_second, 2.5);
  EXPECT_EQ(c->ces.max_requests_per_second, 7.0);
  EXPECT_EQ(c->ces.status_batch_size, 1);
  EXPECT_EQ(c->telemetry.listen, (ListenAddress{"::1", 0}));
  EXPECT_EQ(c->telemetry.listen.ToString(), "[::1]:0");
  EXPECT_EQ(c->admin.listen, (ListenAddress{"0.0.0.0", 65535}));
  EXPECT_TRUE(c->admin.allow_remote);
  EXPECT_EQ(c->admin.access_key_secret, "AdminKey");
  EXPECT_EQ(c->ces.timeout_s, 30s);  // untouched keys keep their defaults
}

TEST(ConfigFile, WrongTypeNamesFileLineKeyValueAndExpectation) {
  EXPECT_EQ(Error("[concerto]\n\ntimeout_s = \"abc\"\n"),
            "deployment.toml:3: concerto.timeout_s = \"abc\": expected an integer number of seconds between 1 and 600");
  EXPECT_EQ(Error("[concerto]\ntimeout_s = 30.5\n"),
            "deployment.toml:2: concerto.timeout_s = 30.5: expected an integer number of seconds between 1 and 600");
  EXPECT_EQ(Error("[adapter]\nauto_commissioning = \"true\"\n"),
            "deployment.toml:2: adapter.auto_commissioning = \"true\": expected true or false");
  EXPECT_EQ(Error("[adapter]\nname = 42\n"), "deployment.toml:2: adapter.name = 42: expected a non-empty string");
  EXPECT_EQ(Error("[ces]\nworkers = [1, 2]\n"), "deployment.toml:2: ces.workers = [ 1, 2 ]: expected an integer between 1 and 256");
  EXPECT_EQ(Error("[ces]\nmax_requests_per_second = \"fast\"\n"),
            "deployment.toml:2: ces.max_requests_per_second = \"fast\": expected a number between 0.01 and 10000 "
            "(requests per second)");
  EXPECT_EQ(Error("[storage]\npath = { file = \"x\" }\n"),
            "deployment.toml:2: storage.path = a table: expected a non-empty string");
}

TEST(ConfigFile, OutOfRangeNamesTheRange) {
  EXPECT_EQ(Error("[concerto]\npage_size = 501\n"),
            "deployment.toml:2: concerto.page_size = 501: expected an integer between 1 and 500");
  EXPECT_EQ(Error("[ces]\nstatus_batch_size = 101\n"),
            "deployment.toml:2: ces.status_batch_size = 101: expected an integer between 1 and 100");
  EXPECT_EQ(Error("[telemetry]\nmax_records_per_request = 1000001\n"),
            "deployment.toml:2: telemetry.max_records_per_request = 1000001: expected an integer between 1 and "
            "1000000");
  EXPECT_EQ(Error("[telemetry]\nmax_records_per_request = 0\n"),
            "deployment.toml:2: telemetry.max_records_per_request = 0: expected an integer between 1 and 1000000");
  EXPECT_EQ(Error("[liveness]\noffline_timeout_s = 0\n"),
            "deployment.toml:2: liveness.offline_timeout_s = 0: expected an integer number of seconds between 1 and "
            "604800");
  EXPECT_EQ(Error("[queues]\nmax_receives = -1\n"),
            "deployment.toml:2: queues.max_receives = -1: expected an integer between 1 and 1000");
  EXPECT_EQ(Error("[concerto]\nmax_requests_per_second = 0\n"),
            "deployment.toml:2: concerto.max_requests_per_second = 0: expected a number between 0.01 and 10000 "
            "(requests per second)");
  EXPECT_THAT(Error("[concerto]\nmax_requests_per_second = nan\n"), HasSubstr("expected a number between 0.01"));
  EXPECT_THAT(Error("[concerto]\nmax_requests_per_second = inf\n"), HasSubstr("expected a number between 0.01"));
  EXPECT_THAT(Error("[concerto]\nworkers = 3000000000\n"), HasSubstr("expected an integer between 1 and 256"));
  EXPECT_EQ(Error("[schedule]\nmetadata_refresh_s = 999999999999\n"),
            "deployment.toml:2: schedule.metadata_refresh_s = 999999999999: expected an integer number of seconds "
            "between 1 and 2592000");
}

// Issue 13: `workers = 100000000` passed and `serve` aborted; a rate of 1e-300 per second was
// accepted. Every number has a range; both ends are accepted, one step outside is refused, from
// the file and from the environment alike.
TEST(ConfigFile, EveryNumberHasARangeAndItsEndsAreAccepted) {
  EXPECT_EQ(Error("[concerto]\nworkers = 100000000\n"),
            "deployment.toml:2: concerto.workers = 100000000: expected an integer between 1 and 256");
  EXPECT_EQ(Error("[concerto]\nmax_requests_per_second = 1e-300\n"),
            "deployment.toml:2: concerto.max_requests_per_second = 1e-300: expected a number between 0.01 and 10000 "
            "(requests per second)");
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CES_MAX_REQUESTS_PER_SECOND", "1e-300"}})),
              HasSubstr("PWRCELL_CES_MAX_REQUESTS_PER_SECOND=\"1e-300\" (ces.max_requests_per_second): expected a "
                        "number between 0.01 and 10000"));
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CES_WORKERS", "100000000"}})),
              HasSubstr("(ces.workers): expected an integer between 1 and 256"));
  for (const KeyInfo& key : Keys()) {
    const std::string& e = key.expected;
    const auto between = e.find("between ");
    if (between == std::string::npos) continue;
    // "... between MIN and MAX ..."
    const std::string rest = e.substr(between + 8);
    const double min = std::stod(rest);
    const double max = std::stod(rest.substr(rest.find(" and ") + 5));
    const bool rate = e.starts_with("a number");
    const std::string name = key.section + "." + key.key;
    const auto text = [rate](double v) {
      // Integers as integers: the shortest form of 1000000.0 is "1e+06", a TOML float.
      if (!rate) return std::to_string(static_cast<long long>(v));
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
      std::string t(buf, end);
      if (rate && t.find_first_of(".e") == std::string::npos) t += ".0";
      return t;
    };
    const auto load = [&](double v) { return Load("[" + key.section + "]\n" + key.key + " = " + text(v) + "\n"); };
    EXPECT_TRUE(load(min).ok()) << name << " = " << text(min) << ": " << load(min).status().ToString();
    EXPECT_TRUE(load(max).ok()) << name << " = " << text(max) << ": " << load(max).status().ToString();
    const double below = rate ? min / 2 : min - 1;
    const double above = rate ? max * 2 : max + 1;
    // (toml++ shows 0.005 as 0.0050000000000000001: the value is checked for integers only.)
    const std::string shown_below = rate ? "" : text(below) + ": expected ";
    const std::string shown_above = rate ? "" : text(above) + ": expected ";
    EXPECT_THAT(Error("[" + key.section + "]\n" + key.key + " = " + text(below) + "\n"),
                AllOf(HasSubstr(name + " = " + shown_below), HasSubstr(": expected " + e)))
        << name;
    EXPECT_THAT(Error("[" + key.section + "]\n" + key.key + " = " + text(above) + "\n"),
                AllOf(HasSubstr(name + " = " + shown_above), HasSubstr(": expected " + e)))
        << name;
  }
}

TEST(ConfigFile, RejectsBadUrlsAddressesAndBackends) {
  EXPECT_EQ(Error("[concerto]\nroot_url = \"ftp://concerto\"\n"),
            "deployment.toml:2: concerto.root_url = \"ftp://concerto\": expected a URL starting with http:// or "
            "https://");
  EXPECT_THAT(Error("[ces]\nroot_url = \"concerto.example.com\"\n"), HasSubstr("ces.root_url"));
  EXPECT_THAT(Error("[ces]\nroot_url = \"http://\"\n"), HasSubstr("expected a URL"));
  EXPECT_EQ(Error("[telemetry]\nlisten = \"127.0.0.1:70000\"\n"),
            "deployment.toml:2: telemetry.listen = \"127.0.0.1:70000\": expected a \"host:port\" address with port "
            "0..65535");
  EXPECT_THAT(Error("[admin]\nlisten = \"8071\"\n"), HasSubstr("admin.listen = \"8071\": expected"));
  EXPECT_THAT(Error("[admin]\nlisten = \":8071\"\n"), HasSubstr("admin.listen"));
  EXPECT_THAT(Error("[admin]\nlisten = \"::1:8071\"\n"), HasSubstr("admin.listen"));
  EXPECT_THAT(Error("[admin]\nlisten = \"localhost:http\"\n"), HasSubstr("admin.listen"));
  EXPECT_EQ(Error("[secrets]\nbackend = \"vault\"\n"),
            "deployment.toml:2: secrets.backend = \"vault\": expected one of \"file\", \"aws\"");
  EXPECT_EQ(Error("[backend]\nkind = \"dynamo\"\n"),
            "deployment.toml:2: backend.kind = \"dynamo\": expected one of \"embedded\", \"aws\"");
  EXPECT_THAT(Error("[aws]\ndevice_table = \"\"\n"), HasSubstr("aws.device_table = \"\": expected an AWS resource name"));
  EXPECT_THAT(Error("[aws]\ningest_queue = \"my queue\"\n"), HasSubstr("aws.ingest_queue"));
  EXPECT_THAT(Error("[aws]\nreceive_wait_s = 21\n"), HasSubstr("aws.receive_wait_s = 21: expected an integer between 1 and 20"));
  EXPECT_EQ(Error("[adapter]\nname = \"\"\n"), "deployment.toml:2: adapter.name = \"\": expected a non-empty string");
}

TEST(ConfigFile, UnknownKeyIsNamedWithADidYouMean) {
  EXPECT_EQ(Error("[concerto]\ntimout_s = 10\n"),
            "deployment.toml:2: unknown key 'concerto.timout_s' (did you mean 'concerto.timeout_s'?)");
  EXPECT_EQ(Error("[concerto]\ntiemout_s = 10\n"),
            "deployment.toml:2: unknown key 'concerto.tiemout_s' (did you mean 'concerto.timeout_s'?)");
  EXPECT_EQ(Error("[concerto]\ncolour = \"blue\"\n"), "deployment.toml:2: unknown key 'concerto.colour'");
  // The right key in the wrong section.
  EXPECT_EQ(Error("[ces]\npage_size = 10\n"),
            "deployment.toml:2: unknown key 'ces.page_size' (did you mean 'concerto.page_size'?)");
}

TEST(ConfigFile, UnknownSectionIsNamedWithADidYouMean) {
  EXPECT_EQ(Error("[concrto]\ntimeout_s = 10\n"),
            "deployment.toml:1: unknown section '[concrto]' (did you mean '[concerto]'?)");
  EXPECT_EQ(Error("\n[database]\n"), "deployment.toml:2: unknown section '[database]'");
}

TEST(ConfigFile, KeyOutsideAnySectionIsNamed) {
  EXPECT_EQ(Error("name = \"x\"\n"),
            "deployment.toml:1: unknown key 'name' (every key belongs in a [section]; did you mean 'adapter.name'?)");
  EXPECT_EQ(Error("path = \"x\"\n"), "deployment.toml:1: unknown key 'path' (every key belongs in a [section])");
}

TEST(ConfigFile, SectionThatIsNotATableIsRejected) {
  EXPECT_EQ(Error("concerto = 5\n"), "deployment.toml:1: concerto = 5: expected a table ([concerto])");
  EXPECT_THAT(Error("[[ces]]\ntimeout_s = 1\n"), HasSubstr("expected a table ([ces])"));
}

TEST(ConfigFile, DottedKeysAndInlineTablesWork) {
  const auto c = Load("concerto.timeout_s = 7\nces = { workers = 2 }\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->concerto.timeout_s, 7s);
  EXPECT_EQ(c->ces.workers, 2);
}

TEST(ConfigFile, ReportsTheFirstProblemInFileOrder) {
  EXPECT_THAT(Error("[queues]\nmax_receives = 0\n[adapter]\nnmae = \"x\"\n"), HasSubstr(":2: queues.max_receives"));
  EXPECT_THAT(Error("[queues]\nmax_receives = 1\n[adapter]\nnmae = \"x\"\n[ces]\nworkers = 0\n"),
              HasSubstr(":4: unknown key 'adapter.nmae'"));
}

TEST(ConfigFile, SyntaxErrorNamesFileLineAndColumn) {
  const std::string message = Error("[concerto]\ntimeout_s = 30\nworkers = = 3\n");
  EXPECT_THAT(message, HasSubstr("deployment.toml:3:"));
  EXPECT_THAT(message, HasSubstr("TOML syntax error"));
  EXPECT_THAT(Error("[concerto]\ntimeout_s = 1\ntimeout_s = 2\n"), HasSubstr("deployment.toml:3:"));
}

TEST(ConfigFile, MissingFileIsNotFoundNamingThePath) {
  const auto c = LoadConfigFile("/nonexistent/dir/deployment.toml", EmptyEnvironment());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/dir/deployment.toml"));
}

TEST(ConfigFile, ADirectoryIsNotAConfigurationFile) {
  const auto c = LoadConfigFile(PWRCELL_SOURCE_DIR, EmptyEnvironment());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

TEST(ConfigFile, FileErrorsNameTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "bad.toml").string();
  std::ofstream(path) << "[concerto]\nworkers = 0\n";
  const auto c = LoadConfigFile(path, EmptyEnvironment());
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), path + ":2: concerto.workers = 0: expected an integer between 1 and 256");
}

TEST(ConfigFile, SameListenAddressTwiceIsRejected) {
  EXPECT_EQ(Error("[admin]\nlisten = \"127.0.0.1:8070\"\n"),
            "deployment.toml: telemetry.listen and admin.listen are both \"127.0.0.1:8070\": expected two different "
            "addresses");
  // Port 0 means "any free port": two of those never collide.
  EXPECT_TRUE(Load("[admin]\nlisten = \"127.0.0.1:0\"\n[telemetry]\nlisten = \"127.0.0.1:0\"\n").ok());
}

TEST(ConfigFile, OptionalStringsTakeEmptyAndAnyTextButNotOtherTypes) {
  const auto c = Load(
      "[telemetry]\naccess_key_secret = \"IngestKey\"\nfirehose_access_key_secret = \"\"\n"
      "tls_cert_file = \"/etc/c.pem\"\ntls_key_file = \"/etc/k.pem\"\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->telemetry.access_key_secret, "IngestKey");
  EXPECT_EQ(c->telemetry.firehose_access_key_secret, "");
  EXPECT_EQ(c->telemetry.tls_cert_file, "/etc/c.pem");
  EXPECT_EQ(Error("[telemetry]\nfirehose_access_key_secret = 5\n"),
            "deployment.toml:2: telemetry.firehose_access_key_secret = 5: expected a string (\"\" for none)");
  // An environment variable set to "" turns a key from the file off again.
  const auto off = Load("[telemetry]\naccess_key_secret = \"IngestKey\"\n",
                        MapEnvironment({{"PWRCELL_TELEMETRY_ACCESS_KEY_SECRET", ""}}));
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->telemetry.access_key_secret, "");
}

TEST(ConfigFile, TlsNeedsBothTheCertificateAndTheKey) {
  EXPECT_EQ(Error("[telemetry]\ntls_cert_file = \"/etc/c.pem\"\n"),
            "deployment.toml: telemetry.tls_cert_file is set but telemetry.tls_key_file is not: expected both "
            "(HTTPS) or neither (plain HTTP)");
  EXPECT_EQ(Error("", MapEnvironment({{"PWRCELL_TELEMETRY_TLS_KEY_FILE", "/etc/k.pem"}})),
            "deployment.toml: telemetry.tls_key_file is set but telemetry.tls_cert_file is not: expected both "
            "(HTTPS) or neither (plain HTTP)");
}

TEST(ConfigEnvironment, OverridesWinOverTheFile) {
  const auto c = Load("[concerto]\ntimeout_s = 20\nroot_url = \"http://file:1\"\n",
                      MapEnvironment({{"PWRCELL_CONCERTO_TIMEOUT_S", "10"}, {"ConcertoRootUrl", "https://env:2/"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->concerto.timeout_s, 10s);
  EXPECT_EQ(c->concerto.root_url, "https://env:2");
}

TEST(ConfigEnvironment, SeedNamesSetTheirKeys) {
  const auto c = Load("", MapEnvironment({{"ConcertoRootUrl", "https://concerto.example.com"},
                                          {"CesRootUrl", "https://ces.example.com"},
                                          {"AUTO_COMMISSIONING", "true"},
                                          {"ConcertoCredentials", "prod/ConcertoCredentials"},
                                          {"CesCredentials", "prod/CesCredentials"},
                                          {"ADAPTER_NAME", "pwrcell-prod"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->concerto.root_url, "https://concerto.example.com");
  EXPECT_EQ(c->ces.root_url, "https://ces.example.com");
  EXPECT_TRUE(c->adapter.auto_commissioning);
  EXPECT_EQ(c->concerto.credentials_secret, "prod/ConcertoCredentials");
  EXPECT_EQ(c->ces.credentials_secret, "prod/CesCredentials");
  EXPECT_EQ(c->adapter.name, "pwrcell-prod");
}

TEST(ConfigEnvironment, BooleansAcceptTrueFalseOneZero) {
  const auto on = [](const std::string& v) {
    auto c = Load("[adapter]\nauto_commissioning = false\n", MapEnvironment({{"AUTO_COMMISSIONING", v}}));
    EXPECT_TRUE(c.ok()) << v;
    return c.ok() && c->adapter.auto_commissioning;
  };
  EXPECT_TRUE(on("true"));
  EXPECT_TRUE(on("TRUE"));
  EXPECT_TRUE(on("1"));
  EXPECT_FALSE(on("false"));
  EXPECT_FALSE(on("False"));
  EXPECT_FALSE(on("0"));
}

TEST(ConfigEnvironment, EveryKeyHasAGenericVariable) {
  const std::map<std::string, std::string> env = {
      {"PWRCELL_ADAPTER_NAME", "a"},
      {"PWRCELL_ADAPTER_AUTO_COMMISSIONING", "1"},
      {"PWRCELL_CONCERTO_ROOT_URL", "http://c:1"},
      {"PWRCELL_CONCERTO_CREDENTIALS_SECRET", "cc"},
      {"PWRCELL_CONCERTO_TIMEOUT_S", "2"},
      {"PWRCELL_CONCERTO_WORKERS", "3"},
      {"PWRCELL_CONCERTO_MAX_RETRIES", "4"},
      {"PWRCELL_CONCERTO_MAX_REQUESTS_PER_SECOND", "5.5"},
      {"PWRCELL_CONCERTO_TOKEN_RENEWAL_S", "60"},
      {"PWRCELL_CONCERTO_CA_FILE", "/etc/pwrcell/concerto-ca.pem"},
      {"PWRCELL_CONCERTO_PAGE_SIZE", "7"},
      {"PWRCELL_CES_ROOT_URL", "https://s:8"},
      {"PWRCELL_CES_CREDENTIALS_SECRET", "sc"},
      {"PWRCELL_CES_CA_FILE", "/etc/pwrcell/ces-ca.pem"},
      {"PWRCELL_CES_TIMEOUT_S", "9"},
      {"PWRCELL_CES_WORKERS", "10"},
      {"PWRCELL_CES_MAX_RETRIES", "11"},
      {"PWRCELL_CES_MAX_REQUESTS_PER_SECOND", "12"},
      {"PWRCELL_CES_STATUS_BATCH_SIZE", "13"},
      {"PWRCELL_SCHEDULE_REGISTRAR_POLL_S", "14"},
      {"PWRCELL_SCHEDULE_CES_STATE_POLL_S", "15"},
      {"PWRCELL_SCHEDULE_LIVENESS_SWEEP_S", "16"},
      {"PWRCELL_SCHEDULE_METADATA_REFRESH_S", "17"},
      {"PWRCELL_LIVENESS_OFFLINE_TIMEOUT_S", "18"},
      {"PWRCELL_LIVENESS_RECORD_INTERVAL_S", "19"},
      {"PWRCELL_QUEUES_VISIBILITY_TIMEOUT_S", "20"},
      {"PWRCELL_QUEUES_MAX_RECEIVES", "21"},
      {"PWRCELL_SECRETS_BACKEND", "aws"},
      {"PWRCELL_SECRETS_PATH", "/run/secrets.json"},
      {"PWRCELL_BACKEND_KIND", "aws"},
      {"PWRCELL_STORAGE_PATH", "/var/lib/a.db"},
      {"PWRCELL_AWS_REGION", "eu-west-1"},
      {"PWRCELL_AWS_DEVICE_TABLE", "t-devices"},
      {"PWRCELL_AWS_COORDINATION_TABLE", "t-coordination"},
      {"PWRCELL_AWS_INGEST_QUEUE", "q-ingest"},
      {"PWRCELL_AWS_CONCERTO_QUEUE", "q-concerto"},
      {"PWRCELL_AWS_CONCERTO_TELEMETRY_QUEUE", "q-concerto-telemetry"},
      {"PWRCELL_AWS_CES_QUEUE", "q-ces"},
      {"PWRCELL_AWS_TELEMETRY_STREAM", ""},
      {"PWRCELL_AWS_RECEIVE_WAIT_S", "20"},
      {"PWRCELL_TELEMETRY_LISTEN", "0.0.0.0:22"},
      {"PWRCELL_TELEMETRY_MAX_BODY_BYTES", "2300"},
      {"PWRCELL_TELEMETRY_MAX_RECORDS_PER_REQUEST", "29"},
      {"PWRCELL_TELEMETRY_ACCESS_KEY_SECRET", "IngestKey"},
      {"PWRCELL_TELEMETRY_FIREHOSE_ACCESS_KEY_SECRET", "FirehoseKey"},
      {"PWRCELL_TELEMETRY_TLS_CERT_FILE", "/etc/pwrcell/cert.pem"},
      {"PWRCELL_TELEMETRY_TLS_KEY_FILE", "/etc/pwrcell/key.pem"},
      {"PWRCELL_ADMIN_LISTEN", "127.0.0.1:24"},
      {"PWRCELL_ADMIN_ALLOW_REMOTE", "true"},
      {"PWRCELL_ADMIN_ACCESS_KEY_SECRET", "AdminKey"},
      {"PWRCELL_SIMULATED_RECORD_INTERVAL_S", "25"},
      {"PWRCELL_LAMBDA_CONCERTO_CONTROL_CONCURRENCY", "26"},
      {"PWRCELL_LAMBDA_CONCERTO_TELEMETRY_CONCURRENCY", "27"},
      {"PWRCELL_LAMBDA_CES_CONCURRENCY", "28"},
  };
  ASSERT_EQ(env.size(), Keys().size());  // a new key needs a line here
  for (const KeyInfo& key : Keys()) EXPECT_EQ(env.count(key.env_var), 1u) << key.env_var;
  const auto c = Load("", MapEnvironment(env));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Config expected;
  expected.adapter = {"a", true};
  expected.concerto = {"http://c:1", "cc", "/etc/pwrcell/concerto-ca.pem", 2s, 3, 4, 5.5, 60s, 7};
  expected.ces = {"https://s:8", "sc", "/etc/pwrcell/ces-ca.pem", 9s, 10, 11, 12.0, 13};
  expected.schedule = {14s, 15s, 16s, 17s};
  expected.liveness = {18s, 19s};
  expected.queues = {20s, 21};
  expected.secrets = {"aws", "/run/secrets.json"};
  expected.backend = {"aws"};
  expected.storage = {"/var/lib/a.db"};
  expected.aws = {"eu-west-1", "t-devices", "t-coordination", "q-ingest", "q-concerto", "q-concerto-telemetry",
                  "q-ces",     "",          20};
  // Field by field, for the same GCC 12 warning as Config{}.
  expected.telemetry.listen = {"0.0.0.0", 22};
  expected.telemetry.max_body_bytes = 2300;
  expected.telemetry.max_records_per_request = 29;
  expected.telemetry.access_key_secret = "IngestKey";
  expected.telemetry.firehose_access_key_secret = "FirehoseKey";
  expected.telemetry.tls_cert_file = "/etc/pwrcell/cert.pem";
  expected.telemetry.tls_key_file = "/etc/pwrcell/key.pem";
  expected.admin.listen = {"127.0.0.1", 24};
  expected.admin.allow_remote = true;
  expected.admin.access_key_secret = "AdminKey";
  expected.simulated = {25s};
  expected.lambda = {26, 27, 28};
  EXPECT_EQ(*c, expected);
}

TEST(ConfigEnvironment, BadValueNamesTheVariableKeyValueAndExpectation) {
  EXPECT_EQ(Error("", MapEnvironment({{"PWRCELL_CONCERTO_TIMEOUT_S", "abc"}})),
            "environment variable PWRCELL_CONCERTO_TIMEOUT_S=\"abc\" (concerto.timeout_s): expected an integer number "
            "of seconds between 1 and 600");
  EXPECT_EQ(Error("", MapEnvironment({{"AUTO_COMMISSIONING", "yes"}})),
            "environment variable AUTO_COMMISSIONING=\"yes\" (adapter.auto_commissioning): expected true, false, 1 or "
            "0");
  EXPECT_EQ(Error("", MapEnvironment({{"ConcertoRootUrl", "concerto:8080"}})),
            "environment variable ConcertoRootUrl=\"concerto:8080\" (concerto.root_url): expected a URL starting with "
            "http:// or https://");
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CONCERTO_PAGE_SIZE", "1000"}})),
              HasSubstr("PWRCELL_CONCERTO_PAGE_SIZE=\"1000\" (concerto.page_size): expected an integer between 1 and "
                        "500"));
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CES_WORKERS", " 4"}})), HasSubstr("PWRCELL_CES_WORKERS"));
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CES_MAX_REQUESTS_PER_SECOND", "inf"}})),
              HasSubstr("PWRCELL_CES_MAX_REQUESTS_PER_SECOND"));
  // Set but empty is an error, not "unset": it is usually a deployment parameter left blank.
  EXPECT_THAT(Error("", MapEnvironment({{"ADAPTER_NAME", ""}})), HasSubstr("ADAPTER_NAME=\"\""));
}

TEST(ConfigEnvironment, FileIsCheckedBeforeTheEnvironment) {
  EXPECT_THAT(Error("[ces]\nworkers = 0\n", MapEnvironment({{"PWRCELL_CES_WORKERS", "2"}})),
              HasSubstr("deployment.toml:2: ces.workers"));
}

TEST(ConfigEnvironment, SeedNameAndGenericNameMustAgree) {
  EXPECT_TRUE(Load("", MapEnvironment({{"CesRootUrl", "http://a:1"}, {"PWRCELL_CES_ROOT_URL", "http://a:1"}})).ok());
  EXPECT_EQ(Error("", MapEnvironment({{"CesRootUrl", "http://a:1"}, {"PWRCELL_CES_ROOT_URL", "http://b:1"}})),
            "environment variables CesRootUrl=\"http://a:1\" and PWRCELL_CES_ROOT_URL=\"http://b:1\" both set "
            "ces.root_url: set only one");
}

// Issue 13: a misspelt PWRCELL_ variable was silently ignored while an unknown file key is
// refused. Now it is refused too, naming the variable and the closest key's variable.
TEST(ConfigEnvironment, AnUnknownPwrcellVariableIsRefusedWithADidYouMean) {
  EXPECT_EQ(Error("", MapEnvironment({{"PWRCELL_CONCERTO_WORKER", "4"}})),
            "unknown environment variable PWRCELL_CONCERTO_WORKER (did you mean PWRCELL_CONCERTO_WORKERS?): every "
            "PWRCELL_ variable sets a configuration key (PWRCELL_<SECTION>_<KEY>; README \"Configuration\")");
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_FROBNICATE", "1"}, {"PWRCELL_ZZZ", "1"}})),
              AllOf(HasSubstr("unknown environment variable PWRCELL_FROBNICATE: every"), HasSubstr("; 1 more unknown"),
                    Not(HasSubstr("did you mean"))));
  // The value is never echoed: a misspelt variable may hold a secret.
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_CONCERTO_PASSWORD", "hunter2-secret"}})),
              Not(HasSubstr("hunter2-secret")));
}

TEST(ConfigEnvironment, NonConfigPwrcellVariablesAndOtherNamesAreIgnored) {
  std::map<std::string, std::string> env = {{"PATH", "/bin"}, {"ConcertoRootUrl", "http://c:1"}, {"PWRCELLX", "1"}};
  for (const std::string& name : NonConfigVariables()) env[name] = "x";
  EXPECT_TRUE(Load("", MapEnvironment(env)).ok());
  EXPECT_THAT(NonConfigVariables(), ::testing::Contains("PWRCELL_CONFIG"));
  // The real process environment is listed as well (CTest sets no unknown PWRCELL_ variable).
  ::setenv("PWRCELL_CONCERTO_WORKRES", "4", 1);
  const auto c = Load("", ProcessEnvironment());
  ::unsetenv("PWRCELL_CONCERTO_WORKRES");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("PWRCELL_CONCERTO_WORKRES (did you mean PWRCELL_CONCERTO_WORKERS?)"));
}

// Issue 13: `[admin] listen = "0.0.0.0:..."` started without a word, and the admin API had no auth.
TEST(ConfigFile, ANonLoopbackAdminAddressNeedsAllowRemoteAndAToken) {
  EXPECT_EQ(Error("[admin]\nlisten = \"0.0.0.0:8071\"\n"),
            "deployment.toml: admin.listen = \"0.0.0.0:8071\" is not a loopback address, and the admin API (device "
            "data, metrics, controls) would be reachable from the network: listen on 127.0.0.1, or set "
            "admin.allow_remote = true with admin.access_key_secret (a bearer token)");
  EXPECT_THAT(Error("", MapEnvironment({{"PWRCELL_ADMIN_LISTEN", "[::]:8071"}})), HasSubstr("not a loopback address"));
  EXPECT_THAT(Error("[admin]\nlisten = \"admin.example.com:8071\"\n"), HasSubstr("not a loopback address"));
  EXPECT_THAT(Error("[admin]\nlisten = \"127.0.0.1.example.com:8071\"\n"), HasSubstr("not a loopback address"));
  EXPECT_EQ(Error("[admin]\nlisten = \"0.0.0.0:8071\"\nallow_remote = true\n"),
            "deployment.toml: admin.allow_remote = true requires admin.access_key_secret: the secret holding the "
            "bearer token every remote admin request must carry");
  EXPECT_TRUE(Load("[admin]\nlisten = \"0.0.0.0:8071\"\nallow_remote = true\naccess_key_secret = \"AdminKey\"\n").ok());
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "[::1]"}) {
    EXPECT_TRUE(Load(std::string("[admin]\nlisten = \"") + host + ":8071\"\n").ok()) << host;
  }
  EXPECT_FALSE(IsLoopback({"10.0.0.1", 1}));
  EXPECT_FALSE(IsLoopback({"127.0.0", 1}));
  EXPECT_FALSE(IsLoopback({"127.0.0.256", 1}));
  EXPECT_TRUE(IsLoopback({"LocalHost", 1}));
}

TEST(ConfigEnvironment, ProcessEnvironmentReadsTheProcess) {
  ::setenv("PWRCELL_CONFIG_TEST_VARIABLE", "42", 1);
  EXPECT_EQ(ProcessEnvironment()("PWRCELL_CONFIG_TEST_VARIABLE"), "42");
  ::unsetenv("PWRCELL_CONFIG_TEST_VARIABLE");
  EXPECT_EQ(ProcessEnvironment()("PWRCELL_CONFIG_TEST_VARIABLE"), std::nullopt);
}

TEST(ConfigDescribe, DefaultsAreDescribedAsToml) {
  const std::string text = DescribeConfig(Config{});
  EXPECT_THAT(text, HasSubstr("effective configuration"));
  EXPECT_THAT(text, HasSubstr("[concerto]\nroot_url = \"http://127.0.0.1:8080\"\n"));
  EXPECT_THAT(text, HasSubstr("timeout_s = 30\n"));
  EXPECT_THAT(text, HasSubstr("max_requests_per_second = 25.0\n"));
  EXPECT_THAT(text, HasSubstr("[telemetry]\nlisten = \"127.0.0.1:8070\"\n"));
  EXPECT_THAT(text, HasSubstr("auto_commissioning = false\n"));
}

TEST(ConfigDescribe, LoadsBackToTheSameConfig) {
  Config c;
  c.adapter.name = "quote \" and backslash \\ and tab\t";
  c.adapter.auto_commissioning = true;
  c.concerto.max_requests_per_second = 0.1;
  c.ces.max_requests_per_second = 0.01;  // the range's lower end (1e-3 before ranges)
  c.concerto.ca_file = "/etc/pwrcell/ca.pem";
  c.admin.listen = {"0.0.0.0", 8071};
  c.admin.allow_remote = true;
  c.admin.access_key_secret = "AdminKey";
  c.concerto.page_size = 500;
  c.schedule.metadata_refresh_s = 1s;
  c.telemetry.listen = {"::1", 0};
  c.storage.path = "/var/lib/pwrcell adapter/état.db";
  const std::string text = DescribeConfig(c);
  const auto back = LoadConfigString(text, "described", EmptyEnvironment());
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(*back, c);
  EXPECT_EQ(DescribeConfig(Config{}),
            DescribeConfig(*LoadConfigString(DescribeConfig(Config{}), "d", EmptyEnvironment())));
}

// Issue 13: a password inside a URL was printed by `config check --print`; it is "***" now, in
// the described configuration and in error messages, while the loaded Config keeps it.
TEST(ConfigDescribe, APasswordInsideAUrlIsNeverShown) {
  const auto c = Load("[concerto]\nroot_url = \"https://ops:File-Pa55@concerto.example/\"\n",
                      MapEnvironment({{"CesRootUrl", "http://key-T0ken@ces.example"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->concerto.root_url, "https://ops:File-Pa55@concerto.example");  // requests keep it
  const std::string text = DescribeConfig(*c);
  EXPECT_THAT(text, HasSubstr("root_url = \"https://ops:***@concerto.example\""));
  EXPECT_THAT(text, HasSubstr("root_url = \"http://***@ces.example\""));
  EXPECT_THAT(text, Not(HasSubstr("File-Pa55")));
  EXPECT_THAT(text, Not(HasSubstr("key-T0ken")));
  EXPECT_THAT(Error("[ces]\nroot_url = \"http://u:Bad-Pa55@ces example\"\n"),
              AllOf(HasSubstr("ces.root_url = \"http://u:***@ces"), Not(HasSubstr("Bad-Pa55"))));
  EXPECT_THAT(Error("", MapEnvironment({{"ConcertoRootUrl", "ftp://u:Env-Pa55@c"}})),
              AllOf(HasSubstr("ConcertoRootUrl=\"ftp://u:***@c\""), Not(HasSubstr("Env-Pa55"))));
}

}  // namespace
}  // namespace pwrcell::config
