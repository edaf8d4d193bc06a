// ports::Queue on Amazon SQS: one standard queue and its dead-letter queue "<name>-dlq", tied by
// the source queue's RedrivePolicy (maxReceiveCount = max_receives), so that SQS itself moves a
// message that was delivered max_receives times on its next receive. Spoken through AwsClient in
// SQS's JSON protocol; no AWS type or JSON leaves this adapter.
//
// How the port maps onto SQS, and where SQS cannot give what the port promises:
// - Calls per port method: Send = 1 SendMessage; SendBatch = 1 SendMessageBatch (+1 for entries
//   that failed on AWS's side); Receive = 1 ReceiveMessage; Delete = 1 DeleteMessage;
//   ChangeVisibility = 1 ChangeMessageVisibility; DeadLetter = SendMessage to the DLQ, then
//   DeleteMessage from the queue; Stats = 2 GetQueueAttributes; PeekDeadLetters = 1
//   ReceiveMessage on the DLQ (VisibilityTimeout 0) for up to 10, more: one per 10 (hidden for
//   `hold`) + ChangeMessageVisibilityBatch back to 0; RedriveDeadLetters = per 10 messages one
//   ReceiveMessage on the DLQ, one SendMessageBatch to the queue, one DeleteMessageBatch on the
//   DLQ, and a last ReceiveMessage that finds the DLQ empty (unless max_messages stops it first).
// - Bodies: SQS accepts only the XML characters #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
//   #x10000-#x10FFFF, at least one, as UTF-8. A body that is such text goes as it is; any other
//   (binary protobuf, invalid UTF-8, control bytes, the empty body) goes base64-encoded with the
//   message attribute "pwrcell-encoding" = "base64" ("empty" for the empty body, sent as "-").
//   Messages without the attribute (other producers) are delivered as their text. A body above
//   ports::kMaxQueueMessageBytes is kInvalidArgument before any call, as on every backend: its
//   base64 form and the attributes fit SQS's 256 KiB (262,144 bytes) message limit.
// - Order: the port's "oldest first" is best effort on a standard SQS queue (SQS does not
//   guarantee order; a FIFO queue would, but blocks a message group while one of its messages is
//   in flight, which the port's concurrent consumers cannot live with). moto keeps the order.
// - Visibility timeouts are whole seconds on SQS: a timeout is rounded UP to the next second
//   (1.2 s -> 2 s), so that a message is never visible again before the time asked for.
// - Receipts and stale deliveries: SQS's DeleteMessage reference says a request with an older
//   receipt handle than the latest delivery's succeeds whether or not it deletes the message (AWS's
//   knowledge center: on a standard queue an older handle sometimes does delete it); moto applies DeleteMessage and
//   ChangeMessageVisibility with any earlier handle of a message, whoever holds it now, and
//   answers a second DeleteMessage with OK. The port says a stale receipt leaves the
//   message alone, so the adapter keeps the deliveries it handed out in memory and gives the
//   caller its own receipt "sqs:<16 hex: this object>:<n>": Delete, ChangeVisibility and
//   DeadLetter answer kNotFound without calling SQS for a receipt that was deleted, dead-lettered,
//   superseded by a later delivery of the same message through this object, or whose visibility
//   timeout (as measured here from before the ReceiveMessage call, less kReceiptMargin) has run
//   out, since after that SQS may have handed the message to someone else. Consequences: a
//   receipt only works on the SqsQueue object that received it (another process's receipt is
//   kNotFound); a handler that overruns its visibility timeout cannot delete its message, which
//   is then delivered again (at-least-once, as the port allows) instead of being deleted under
//   another consumer. A receipt of any other form is kInvalidArgument. SQS's own
//   ReceiptHandleIsInvalid / "receipt handle has expired" answers are kNotFound too.
// - Duplicates: SQS delivers at least once, so a message may come again while a consumer holds it
//   (moto's threaded server does it when receives race). A Receive that gets a message this object
//   holds in flight does not hand it out twice: the holder keeps it, and its receipt now uses the
//   newer receipt handle and visibility timeout. Consumers in other processes can still see such
//   a duplicate (at-least-once, as the port allows).
// - DeadLetter needs the body, which only the delivery has: it sends the body (and the message's
//   id, sent time and receive count as attributes) to the DLQ, then deletes the message. A crash
//   or failure between the two leaves the message in both queues: the DLQ copy, and the original,
//   which SQS delivers again after its visibility timeout (a duplicate dead letter if it fails
//   again), never a lost message. When only the delete failed, a second DeadLetter with the same
//   receipt retries only the delete.
// - Dead letters moved by SQS keep their id and sent time; their receive_count is reported as
//   max_receives (what SQS moved them at: reading the DLQ would count the peeks too).
// - RedriveDeadLetters is not atomic on SQS (the port: "all or nothing"): each batch of 10 is
//   sent to the queue before it is deleted from the DLQ, so a crash in between duplicates (the
//   DLQ copies come back after `hold` and are redriven again), never loses. On an error the
//   batches before it have moved and the error says how many. SQS's own redrive
//   (StartMessageMoveTask) is not used: it moves everything, with no maximum and no count.
// - Stats come from GetQueueAttributes (ApproximateNumberOfMessages, ...NotVisible; dead_letter
//   = both of the DLQ). On AWS they are approximate and lag by up to a minute or so; moto's are
//   exact. A peek or redrive in progress counts its held dead letters as dead_letter too.
// - Retention: CreateQueues sets both queues' MessageRetentionPeriod to SQS's maximum, 14 days;
//   SQS deletes older messages, where the port keeps dead letters until they are redriven. A dead
//   letter SQS moved expires 14 days after its original send (SQS keeps a standard queue's enqueue
//   timestamp on the move); one DeadLetter sent, 14 days after the DeadLetter.
// - Visibility: SQS also caps a message's visibility at 12 h from its receive in total (extensions
//   included); a ChangeVisibility beyond that is SQS's InvalidParameterValue, kInvalidArgument.
// - Retries: AwsClient retries a call that timed out or failed retryably. A retried SendMessage may
//   store the message twice, and a ReceiveMessage whose answer was lost hides its messages for the
//   visibility timeout and counts a delivery (at-least-once, as the port allows). A Delete retried
//   for longer than kReceiptMargin past the deadline check can still reach SQS after the message
//   was delivered again; the margin covers one ordinary attempt, not a run of retries.
//
// IAM: sqs:GetQueueUrl, GetQueueAttributes, SendMessage, ReceiveMessage, DeleteMessage,
// ChangeMessageVisibility on the queue and its DLQ (the Batch forms are authorised by these);
// CreateQueues also needs sqs:CreateQueue and sqs:SetQueueAttributes.
//
// Thread-safe: every method may be called from many threads at once (AwsClient is thread-safe;
// the deliveries are under a mutex). Errors: those of ports::Queue, with the AwsClient's table
// for AWS's answers (kUnavailable / kResourceExhausted retryable, kPermissionDenied,
// kUnauthenticated permanent; kNotFound when a queue has been deleted).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "ports/queue.h"

namespace pwrcell::adapters::aws {

struct SqsQueueOptions {
  // WaitTimeSeconds of Receive, 0..20 s. 0: the port's "never blocks" (a short poll, which on AWS
  // samples a subset of SQS's servers and may answer empty while messages wait). serve's workers
  // use a few seconds (long polling: fewer empty receives, every server asked). Must be shorter
  // than the AwsClient's timeout.
  std::chrono::seconds wait_time{0};
  // WaitTimeSeconds of the DLQ reads of PeekDeadLetters and RedriveDeadLetters, 0..20 s: with 1 s
  // an empty answer means the DLQ is empty on AWS too (every server asked), at the cost of that
  // second when it is.
  std::chrono::seconds dead_letter_wait_time{1};
  // How long PeekDeadLetters (beyond 10) and RedriveDeadLetters hide the dead letters they hold
  // (1..43200 s); after a crash they are visible again after this.
  std::chrono::seconds hold{30};
};

struct SqsQueueCreateOptions {
  // MessageRetentionPeriod of both queues: 60 s .. 14 days (the default, SQS's maximum).
  std::chrono::seconds retention = std::chrono::hours(24 * 14);
};

class SqsQueue final : public ports::Queue {
 public:
  // A delivery is taken as stale this long before its visibility timeout ends, so that a
  // Delete / ChangeVisibility / DeadLetter reaches SQS before the message can be delivered again.
  static constexpr Duration kReceiptMargin = std::chrono::milliseconds(250);
  // SQS's limit on a message (body and attributes), in bytes.
  static constexpr std::size_t kSqsMessageLimit = std::size_t{256} * 1024;
  // The message attribute that marks an encoded body, and its values.
  static constexpr std::string_view kEncodingAttribute = "pwrcell-encoding";

  // Creates the queue `name` and its dead-letter queue "<name>-dlq" with the RedrivePolicy
  // {deadLetterTargetArn: the DLQ, maxReceiveCount: max_receives}, or, when they exist, sets
  // those attributes on them (idempotent; a changed max_receives is applied). kInvalidArgument
  // for a name that is not 1..76 letters, digits, '-' or '_' (SQS allows 80, the DLQ adds 4) or
  // max_receives outside 1..1000 (SQS's range); the AWS error otherwise, naming the queue.
  static Status CreateQueues(const AwsClient& client, const std::string& name, int max_receives,
                             const SqsQueueCreateOptions& options = {});

  // Opens the existing queue `name`: resolves its URL (GetQueueUrl), its RedrivePolicy
  // (GetQueueAttributes) and the URL of the DLQ the policy names. kNotFound naming the queue (and
  // AWS's error) when the queue or its DLQ does not exist; kFailedPrecondition when the queue has
  // no RedrivePolicy (no DLQ); kInvalidArgument for options out of range; other AWS errors as
  // they come, prefixed with the queue's name. serve calls this at start and exits on an error.
  static Result<std::unique_ptr<SqsQueue>> Open(std::shared_ptr<const AwsClient> client, std::string name,
                                                SqsQueueOptions options = {});

  Result<std::string> Send(const std::string& body) override;
  Result<std::vector<std::string>> SendBatch(const std::vector<std::string>& bodies) override;
  Result<std::vector<ports::ReceivedMessage>> Receive(std::size_t max_messages, Duration visibility_timeout) override;
  Status Delete(const std::string& receipt) override;
  Status DeadLetter(const std::string& receipt) override;
  Status ChangeVisibility(const std::string& receipt, Duration timeout) override;
  Result<ports::QueueStats> Stats() override;
  Result<std::vector<ports::ReceivedMessage>> PeekDeadLetters(std::size_t max_messages) override;
  Result<std::size_t> RedriveDeadLetters(std::size_t max_messages) override;

  // A message of this queue that another consumer received (a Lambda function's SQS event), as
  // SQS carries it: its body text and the value of the encoding attribute ("" when absent).
  struct ForeignMessage {
    std::string message_id;
    std::string text;
    std::string encoding;
    Timestamp sent_at;
    int receive_count = 0;
  };
  // The body as the port delivers it (Receive's ReceivedMessage::body) from SQS's text and the
  // encoding attribute: the same decoding, including the fallback to the text (logged) for a
  // body that does not decode as its attribute claims.
  static std::string DecodeForeignBody(const ForeignMessage& message, std::string_view queue);
  // Sends `message` to this queue's dead-letter queue with the attributes DeadLetter gives (its
  // id, sent time, receive count, encoding), so that PeekDeadLetters and RedriveDeadLetters treat
  // it like any other dead letter. The original is NOT deleted: its consumer does that (a Lambda
  // function reports it processed). Errors: AwsClient's, prefixed with the queue's name.
  Status SendToDeadLetterQueue(const ForeignMessage& message) const;
  // Sets the visibility timeout of a message another consumer received, by its SQS receipt handle
  // (rounded up to whole seconds; SQS caps it at 12 h from the receive). Errors: kInvalidArgument
  // for a timeout out of range; kNotFound when the handle is no longer valid; AwsClient's.
  Status ChangeForeignVisibility(const std::string& receipt_handle, Duration timeout) const;

  const std::string& Name() const { return name_; }
  const std::string& Url() const { return url_; }
  const std::string& DeadLetterUrl() const { return dead_letter_url_; }
  int MaxReceives() const { return max_receives_; }

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // A message as SQS carries it: the body text and the encoding attribute ("" for none).
  struct WireBody {
    std::string text;
    std::string encoding;
  };

  // One delivery handed out by Receive, until it is deleted, dead-lettered, superseded or stale.
  struct Delivery {
    std::string message_id;
    std::string handle;  // SQS's ReceiptHandle
    WireBody wire;
    Timestamp sent_at;
    int receive_count = 0;
    SteadyTime deadline;  // the visibility timeout ends (earliest, as measured here)
    bool dead_letter_sent = false;
  };

  SqsQueue(std::shared_ptr<const AwsClient> client, std::string name, std::string url, std::string dead_letter_url,
           int max_receives, SqsQueueOptions options);

  // The live delivery `receipt` names (a copy), kInvalidArgument / kNotFound as the header says.
  Result<Delivery> FindDelivery(const std::string& receipt, std::uint64_t* sequence);
  void Forget(std::uint64_t sequence);
  // An error of a call that took a receipt handle: SQS's "invalid / expired handle" is kNotFound.
  Status ReceiptCallError(const Status& status, const AwsError& error, std::string_view what) const;
  Result<nlohmann::json> ReceiveFrom(const std::string& url, std::size_t max_messages, std::chrono::seconds visibility,
                                     std::chrono::seconds wait) const;
  ports::ReceivedMessage DeadLetterMessage(const nlohmann::json& message) const;
  Status ReleaseHeld(const std::vector<std::string>& handles) const;

  const std::shared_ptr<const AwsClient> client_;
  const std::string name_;
  const std::string url_;
  const std::string dead_letter_url_;
  const int max_receives_;
  const SqsQueueOptions options_;
  const std::string receipt_prefix_;  // "sqs:<16 hex>:", unique to this object

  std::mutex mutex_;
  std::uint64_t next_sequence_ = 1;                                 // guarded by mutex_
  std::map<std::uint64_t, Delivery> deliveries_;                    // guarded by mutex_
  std::unordered_map<std::string, std::uint64_t> latest_delivery_;  // message id -> sequence; guarded
  std::size_t prune_at_ = 1024;                                     // guarded by mutex_
};

}  // namespace pwrcell::adapters::aws
