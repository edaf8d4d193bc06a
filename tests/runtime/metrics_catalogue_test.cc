// The catalogue of metrics: every component's metrics struct declared on one registry, checked
// against the README's metric list ("Metrics (all prefixed `pwrcell_`): ...") in both directions,
// and against the sources: a metric name is written once, in its declaration.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/kinesis_source.h"
#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "common/metrics.h"
#include "processes/process_metrics.h"
#include "runtime/http/admin_server.h"
#include "runtime/http/ingest_server.h"
#include "runtime/lambda/functions.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/serve_metrics.h"

namespace pwrcell {
namespace {

namespace fs = std::filesystem;

// Every metric the program declares. A new component metrics struct is added here; a metric whose
// struct is missing is caught by EveryMetricNameInTheSourcesIsDeclaredOnce.
std::map<std::string, Metrics::Declaration> Declared() {
  Metrics registry;
  const adapters::ConcertoClientMetrics concerto(&registry);
  const adapters::CesClientMetrics ces(&registry);
  const runtime::http::IngestMetrics ingest(&registry);
  const runtime::http::AdminMetrics admin(&registry);
  const runtime::serve::QueueWorkerMetrics workers(&registry);
  const runtime::serve::ServeMetrics serve(&registry);
  const processes::TelemetryMetrics telemetry(&registry);
  const processes::ConcertoGatewayMetrics gateway(&registry);
  const processes::CesStateMetrics ces_state(&registry);
  const processes::DeviceMetadataMetrics metadata(&registry);
  const processes::RegistrarMetrics registrar(&registry);
  const processes::SimulatedSystemsMetrics simulated(&registry);
  const adapters::aws::AwsClientMetrics aws(&registry);
  const adapters::aws::KinesisSourceMetrics kinesis(&registry);
  const runtime::lambda::LambdaMetrics lambda(&registry);
  std::map<std::string, Metrics::Declaration> out;
  for (auto& declaration : registry.Declarations()) out.emplace(declaration.name, declaration);
  return out;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One entry of the README's list: `name{label=a|b, other}` (labels only when written).
struct Documented {
  std::set<std::string> labels;
  bool labels_given = false;
};

// The README paragraph that starts with "Metrics (all prefixed `pwrcell_`):", up to the blank line.
std::map<std::string, Documented> DocumentedInReadme() {
  std::istringstream readme(ReadFile(fs::path(PWRCELL_SOURCE_DIR) / "README.md"));
  std::string line;
  std::string paragraph;
  bool inside = false;
  while (std::getline(readme, line)) {
    if (!inside && line.starts_with("Metrics (all prefixed `pwrcell_`):")) {
      inside = true;
      paragraph = line.substr(line.find(':') + 1);
      continue;
    }
    if (inside) {
      if (line.find_first_not_of(" \t") == std::string::npos) break;
      paragraph += " " + line;
    }
  }
  std::map<std::string, Documented> out;
  const std::regex quoted("`([^`]+)`");
  for (std::sregex_iterator it(paragraph.begin(), paragraph.end(), quoted), end; it != end; ++it) {
    std::string entry;
    for (char c : (*it)[1].str()) {
      if (c != ' ' && c != '\t') entry += c;
    }
    Documented documented;
    const auto brace = entry.find('{');
    if (brace != std::string::npos) {
      documented.labels_given = true;
      std::stringstream labels(entry.substr(brace + 1, entry.rfind('}') - brace - 1));
      std::string label;
      while (std::getline(labels, label, ',')) documented.labels.insert(label.substr(0, label.find('=')));
    }
    out["pwrcell_" + entry.substr(0, brace)] = documented;
  }
  return out;
}

TEST(MetricsCatalogue, TheReadmeListsEveryDeclaredMetricAndNothingElse) {
  const auto declared = Declared();
  const auto documented = DocumentedInReadme();
  ASSERT_GE(documented.size(), 10U) << "the README's \"Metrics (all prefixed `pwrcell_`):\" paragraph was not found";
  ASSERT_GE(declared.size(), 10U);
  for (const auto& [name, declaration] : declared) {
    EXPECT_TRUE(documented.contains(name)) << name << " is declared but not in the README's metric list";
    EXPECT_FALSE(declaration.help.empty()) << name << " has no help text";
  }
  for (const auto& [name, entry] : documented) {
    EXPECT_TRUE(declared.contains(name)) << name << " is in the README's metric list but declared nowhere";
  }
}

TEST(MetricsCatalogue, LabelsWrittenInTheReadmeAreTheDeclaredOnes) {
  const auto declared = Declared();
  for (const auto& [name, entry] : DocumentedInReadme()) {
    auto found = declared.find(name);
    if (found == declared.end() || !entry.labels_given) continue;
    const std::set<std::string> labels(found->second.label_names.begin(), found->second.label_names.end());
    EXPECT_EQ(entry.labels, labels) << name;
  }
}

// The code of a C++ source without its // and /* */ comments (string literals kept).
std::string WithoutComments(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool after_digit = i > 0 && std::isdigit(static_cast<unsigned char>(text[i - 1])) != 0;
    if (c == 'R' && i + 1 < text.size() && text[i + 1] == '"') {  // R"delimiter( ... )delimiter"
      const std::size_t open = text.find('(', i + 2);
      if (open == std::string::npos) break;
      const std::string close = ")" + text.substr(i + 2, open - i - 2) + "\"";
      const std::size_t end = text.find(close, open);
      if (end == std::string::npos) break;
      out += text.substr(i, end + close.size() - i);
      i = end + close.size() - 1;
    } else if (c == '"' || (c == '\'' && !after_digit)) {  // a literal (not 1'000): copied, escapes included
      out += c;
      for (++i; i < text.size() && text[i] != c; ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) out += text[i++];
        out += text[i];
      }
      if (i < text.size()) out += text[i];
    } else if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      while (i < text.size() && text[i] != '\n') ++i;
      out += '\n';
    } else if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      i = text.find("*/", i + 2);
      if (i == std::string::npos) break;
      ++i;
    } else {
      out += c;
    }
  }
  return out;
}

TEST(MetricsCatalogue, EveryMetricNameInTheSourcesIsDeclaredOnce) {
  const auto declared = Declared();
  const fs::path root(PWRCELL_SOURCE_DIR);
  const std::regex literal("\"(pwrcell_[a-z0-9_]*[a-z0-9])\"");
  std::map<std::string, std::vector<std::string>> written;  // name -> files (once per occurrence)
  std::size_t files = 0;
  for (const auto& item : fs::recursive_directory_iterator(root / "src")) {
    const std::string extension = item.path().extension().string();
    if (!item.is_regular_file() || (extension != ".cc" && extension != ".h")) continue;
    ++files;
    const std::string relative = fs::relative(item.path(), root).generic_string();
    const std::string code = WithoutComments(ReadFile(item.path()));
    for (std::sregex_iterator it(code.begin(), code.end(), literal), end; it != end; ++it) {
      const std::string name = (*it)[1].str();
      if (runtime::lambda::ParseHandler(name).ok()) continue;  // a process's name (pwrcell_gateway), not a metric
      EXPECT_TRUE(declared.contains(name)) << relative << " uses metric " << name << ", which no metrics struct declares";
      written[name].push_back(relative);
    }
  }
  ASSERT_GT(files, 50U) << "no sources under " << root;
  for (const auto& [name, where] : written) {
    EXPECT_EQ(where.size(), 1U) << name << " is written " << where.size() << " times: "
                                << ::testing::PrintToString(where) << "; use its metrics struct instead";
  }
  for (const auto& [name, declaration] : declared) {
    EXPECT_TRUE(written.contains(name)) << name << " is declared but its declaration was not found under src/";
  }
}

}  // namespace
}  // namespace pwrcell
