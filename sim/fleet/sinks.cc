#include "sim/fleet/sinks.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "adapters/aws/aws_client.h"
#include "common/base64.h"

namespace pwrcell::fleetsim {
namespace {

void Log(const std::string& line) {
  std::fprintf(stderr, "fleet-sim: %s\n", line.c_str());
}

// Sleeps up to `seconds`, waking early when asked to stop. Returns false if stopped.
bool SleepUnlessStopped(double seconds, const std::atomic<bool>& stop) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (stop.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !stop.load();
}

class FileSink final : public RecordSink {
 public:
  FileSink(std::string path, std::ofstream out) : path_(std::move(path)), out_(std::move(out)) {}

  Status Deliver(std::span<const OutRecord> records) override {
    for (const auto& record : records) {
      const auto size = static_cast<std::uint32_t>(record.data.size());
      const char header[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                              static_cast<char>(size >> 8), static_cast<char>(size)};
      out_.write(header, sizeof header);
      out_.write(record.data.data(), static_cast<std::streamsize>(record.data.size()));
    }
    out_.flush();
    if (!out_) {
      counts_.undelivered += records.size();
      return UnavailableError("writing " + std::to_string(records.size()) + " records to " + path_ + " failed");
    }
    counts_.delivered += records.size();
    return Status::Ok();
  }
  const SinkCounts& counts() const override { return counts_; }

 private:
  std::string path_;
  std::ofstream out_;
  SinkCounts counts_;
};

std::size_t AppendBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  // Only the start of an error body is ever shown; do not keep megabytes of it.
  if (body->size() < 2048) body->append(data, std::min(size * count, 2048 - body->size()));
  return size * count;
}

class HttpSink final : public RecordSink {
 public:
  HttpSink(std::string url, const std::atomic<bool>& stop) : url_(std::move(url)), stop_(stop) {
    curl_ = curl_easy_init();
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
  }
  ~HttpSink() override {
    curl_slist_free_all(headers_);
    if (curl_) curl_easy_cleanup(curl_);
  }
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  Status Deliver(std::span<const OutRecord> records) override {
    Status first_error;
    for (std::size_t begin = 0; begin < records.size(); begin += kMaxRecordsPerPost) {
      const auto batch = records.subspan(begin, std::min(kMaxRecordsPerPost, records.size() - begin));
      if (stop_.load() && !first_error.ok()) {
        counts_.undelivered += batch.size();  // already failing and told to stop: do not start over
        continue;
      }
      Status status = PostWithRetries(batch);
      if (!status.ok() && first_error.ok()) first_error = status;
    }
    return first_error;
  }
  const SinkCounts& counts() const override { return counts_; }

 private:
  struct Answer {
    long http_status = 0;  // 0 when the request did not complete
    std::string error;     // transport error or the start of the body
    double retry_after_s = 0;
  };

  Answer Post(const std::string& body) {
    Answer answer;
    std::string response;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, AppendBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    const CURLcode code = curl_easy_perform(curl_);
    if (code != CURLE_OK) {
      answer.error = curl_easy_strerror(code);
      return answer;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &answer.http_status);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(curl_, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
      answer.retry_after_s = static_cast<double>(retry_after);
    }
    answer.error = response.substr(0, 300);
    return answer;
  }

  Status PostWithRetries(std::span<const OutRecord> batch) {
    std::string body = R"({"records":[)";
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (i) body += ',';
      // System ids are UUID-shaped plus an optional prefix: escape through the JSON library.
      body += R"({"data":")" + Base64Encode(batch[i].data) + R"(","partitionKey":)" +
              nlohmann::json(batch[i].partition_key).dump() + "}";
    }
    body += "]}";

    double backoff_s = 0.5;
    for (int attempt = 1;; ++attempt) {
      const Answer answer = Post(body);
      if (answer.http_status >= 200 && answer.http_status < 300) {
        counts_.delivered += batch.size();
        if (attempt > 1)
          Log("delivered " + std::to_string(batch.size()) + " records after " + std::to_string(attempt) + " attempts");
        return Status::Ok();
      }
      const bool transient = answer.http_status == 0 || answer.http_status == 429 || answer.http_status >= 500;
      const std::string what = answer.http_status == 0
                                   ? "transport error: " + answer.error
                                   : "HTTP " + std::to_string(answer.http_status) + ": " + answer.error;
      if (!transient) {
        counts_.rejected += batch.size();
        Log("REJECTED " + std::to_string(batch.size()) + " records: POST " + url_ + " answered " + what);
        return InvalidArgumentError("POST " + url_ + " rejected " + std::to_string(batch.size()) + " records: " + what);
      }
      const double wait_s = std::max(backoff_s, answer.retry_after_s);
      if (!stop_.load()) {
        char wait_text[32];
        std::snprintf(wait_text, sizeof wait_text, "%.1f", wait_s);
        Log("POST " + url_ + " failed (" + what + "); retrying " + std::to_string(batch.size()) + " records in " +
            wait_text + " s (attempt " + std::to_string(attempt) + ")");
        if (SleepUnlessStopped(wait_s, stop_)) {
          backoff_s = std::min(backoff_s * 2, 30.0);
          continue;
        }
      }
      counts_.undelivered += batch.size();
      Log("NOT DELIVERED: " + std::to_string(batch.size()) + " records (stopping while " + url_ + " fails: " + what +
          ")");
      return UnavailableError(std::to_string(batch.size()) + " records not delivered to " + url_ + ": " + what);
    }
  }

  std::string url_;
  const std::atomic<bool>& stop_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  SinkCounts counts_;
};

// kinesis:STREAM: PutRecords in batches of at most 500 records and 5 MiB (data and partition
// keys), partition key = systemId. A partial failure (FailedRecordCount > 0) sends the failed
// entries again; throttling (whole call or entries) and transient failures are retried with
// backoff until they succeed or the program is told to stop. A record Kinesis can never take
// (over 1 MiB, a partition key of 0 or over 256 characters) and a call refused for good (no such
// stream, bad credentials) are counted as rejected and logged.
class KinesisSink final : public RecordSink {
 public:
  static constexpr std::size_t kMaxBatchBytes = 5 * 1024 * 1024;
  static constexpr std::size_t kMaxRecordBytes = 1024 * 1024;
  static constexpr std::size_t kMaxPartitionKeyChars = 256;

  KinesisSink(std::string stream, adapters::aws::AwsOptions options, const std::atomic<bool>& stop)
      : stream_(std::move(stream)), client_(std::move(options)), stop_(stop) {}

  Status Deliver(std::span<const OutRecord> records) override {
    Status first_error;
    const auto note = [&](Status status) {
      if (!status.ok() && first_error.ok()) first_error = std::move(status);
    };
    std::vector<const OutRecord*> batch;
    std::size_t batch_bytes = 0;
    const auto flush = [&] {
      if (batch.empty()) return;
      if (stop_.load() && !first_error.ok()) {
        counts_.undelivered += batch.size();  // already failing and told to stop: do not start over
      } else {
        note(PutWithRetries(batch));
      }
      batch.clear();
      batch_bytes = 0;
    };
    for (const auto& record : records) {
      const std::size_t bytes = record.data.size() + record.partition_key.size();
      if (bytes > kMaxRecordBytes || record.partition_key.empty() ||
          record.partition_key.size() > kMaxPartitionKeyChars) {
        ++counts_.rejected;
        Log("REJECTED 1 record of system '" + record.partition_key + "': " + std::to_string(bytes) +
            " bytes, or a partition key Kinesis does not take");
        note(InvalidArgumentError("a record Kinesis does not take"));
        continue;
      }
      if (batch.size() == kMaxRecordsPerPost || batch_bytes + bytes > kMaxBatchBytes) flush();
      batch.push_back(&record);
      batch_bytes += bytes;
    }
    flush();
    return first_error;
  }
  const SinkCounts& counts() const override { return counts_; }

 private:
  // Error codes of a PutRecords entry worth sending again (the rest are refused for good).
  static bool RetryableEntryError(const std::string& code) {
    return code == "ProvisionedThroughputExceededException" || code == "InternalFailure" ||
           code == "KMSThrottlingException";
  }

  Status PutWithRetries(std::vector<const OutRecord*> pending) {
    double backoff_s = 0.1;
    std::size_t rejected = 0;
    for (int attempt = 1;; ++attempt) {
      nlohmann::json entries = nlohmann::json::array();
      for (const OutRecord* record : pending) {
        entries.push_back({{"Data", Base64Encode(record->data)}, {"PartitionKey", record->partition_key}});
      }
      adapters::aws::AwsError error;
      auto answer = client_.Call(adapters::aws::kKinesis, "PutRecords",
                                 {{"StreamName", stream_}, {"Records", std::move(entries)}}, &error);
      std::string what;
      if (!answer.ok()) {
        what = answer.status().ToString();
        if (!answer.status().IsRetryable()) {
          counts_.rejected += pending.size();
          Log("REJECTED " + std::to_string(pending.size()) + " records: PutRecords to '" + stream_ + "': " + what);
          return InvalidArgumentError("PutRecords to '" + stream_ + "' rejected " + std::to_string(pending.size()) +
                                      " records: " + what);
        }
      } else {
        const auto& results = (*answer)["Records"];
        if (!results.is_array() || results.size() != pending.size()) {
          what = "an answer with " + std::to_string(results.is_array() ? results.size() : 0) + " entries for " +
                 std::to_string(pending.size()) + " records";  // send them all again: never drop
        } else {
          std::vector<const OutRecord*> failed;
          std::string failure;
          for (std::size_t i = 0; i < pending.size(); ++i) {
            const std::string code = results[i].value("ErrorCode", "");
            if (code.empty()) {
              ++counts_.delivered;
            } else if (RetryableEntryError(code)) {
              failed.push_back(pending[i]);
              failure = code + ": " + results[i].value("ErrorMessage", "");
            } else {
              ++counts_.rejected;
              ++rejected;
              Log("REJECTED 1 record of system '" + pending[i]->partition_key + "': " + code + ": " +
                  results[i].value("ErrorMessage", ""));
            }
          }
          if (failed.empty()) {
            if (attempt > 1) Log("delivered the rest of a batch after " + std::to_string(attempt) + " attempts");
            if (rejected > 0) {
              return InvalidArgumentError("PutRecords to '" + stream_ + "' rejected " + std::to_string(rejected) +
                                          " records");
            }
            return Status::Ok();
          }
          what = std::to_string(failed.size()) + " of " + std::to_string(pending.size()) + " entries failed (" +
                 failure + ")";
          pending = std::move(failed);
        }
      }
      if (!stop_.load()) {
        char wait_text[32];
        std::snprintf(wait_text, sizeof wait_text, "%.1f", backoff_s);
        Log("PutRecords to '" + stream_ + "': " + what + "; retrying " + std::to_string(pending.size()) +
            " records in " + wait_text + " s (attempt " + std::to_string(attempt) + ")");
        if (SleepUnlessStopped(backoff_s, stop_)) {
          backoff_s = std::min(backoff_s * 2, 10.0);
          continue;
        }
      }
      counts_.undelivered += pending.size();
      Log("NOT DELIVERED: " + std::to_string(pending.size()) + " records (stopping while PutRecords to '" + stream_ +
          "' fails: " + what + ")");
      return UnavailableError(std::to_string(pending.size()) + " records not delivered to Kinesis stream '" + stream_ +
                              "': " + what);
    }
  }

  std::string stream_;
  adapters::aws::AwsClient client_;
  const std::atomic<bool>& stop_;
  SinkCounts counts_;
};

}  // namespace

Result<std::unique_ptr<RecordSink>> MakeSink(const std::string& spec, const std::atomic<bool>& stop) {
  if (spec.rfind("file:", 0) == 0) {
    const std::string path = spec.substr(5);
    if (path.empty()) return InvalidArgumentError("--sink file: needs a path (file:PATH)");
    std::ofstream out(path, std::ios::binary | std::ios::app);
    if (!out) return InvalidArgumentError("--sink " + spec + ": cannot open " + path + " for appending");
    return std::unique_ptr<RecordSink>(std::make_unique<FileSink>(path, std::move(out)));
  }
  if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) {
    return std::unique_ptr<RecordSink>(std::make_unique<HttpSink>(spec, stop));
  }
  if (spec.rfind("kinesis:", 0) == 0) {
    const std::string stream = spec.substr(8);
    if (stream.empty()) return InvalidArgumentError("--sink kinesis: needs a stream name (kinesis:STREAM)");
    auto options = adapters::aws::AwsOptions::FromEnvironment();
    if (!options.ok()) return InvalidArgumentError("--sink " + spec + ": " + options.status().message());
    options->max_attempts = 1;  // the sink retries itself, so that a signal ends the wait
    // A missing stream or refused credentials are a bad argument, said at once.
    const adapters::aws::AwsClient client(*options);
    auto summary = client.Call(adapters::aws::kKinesis, "DescribeStreamSummary", {{"StreamName", stream}});
    if (!summary.ok()) return InvalidArgumentError("--sink " + spec + ": " + summary.status().ToString());
    return std::unique_ptr<RecordSink>(std::make_unique<KinesisSink>(stream, std::move(*options), stop));
  }
  return InvalidArgumentError("--sink " + spec +
                              ": expected file:PATH, http://host:port/v1/telemetry or kinesis:STREAM");
}

}  // namespace pwrcell::fleetsim
