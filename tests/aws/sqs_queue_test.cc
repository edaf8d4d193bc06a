// What the SQS queue does beyond the queue conformance suite (tests/aws/queue_backend.cc runs
// that): creating and opening queue pairs, the bodies on the wire, whole-second visibility,
// receipts, dead letters moved by SQS, long polling. Against moto_server.
#include "adapters/aws/sqs_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoOptions;
using aws_test::UniqueName;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

class SqsQueueTest : public ::testing::Test {
 protected:
  // A new queue pair; nullptr with a test failure when it cannot be made.
  std::unique_ptr<SqsQueue> MakeQueue(int max_receives, SqsQueueOptions options = {}) {
    name_ = UniqueName("sqs-test");
    const Status created = SqsQueue::CreateQueues(*client_, name_, max_receives);
    EXPECT_TRUE(created.ok()) << created.ToString();
    auto opened = SqsQueue::Open(client_, name_, options);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  // The queue's messages as SQS holds them (left visible).
  nlohmann::json RawMessages(const std::string& url) {
    auto received = client_->Call(
        kSqs, "ReceiveMessage",
        {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}, {"VisibilityTimeout", 0}, {"MessageAttributeNames", {"All"}}});
    EXPECT_TRUE(received.ok()) << received.status().ToString();
    return received.ok() ? received->value("Messages", nlohmann::json::array()) : nlohmann::json::array();
  }

  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(MotoOptions());
  std::string name_;
};

TEST_F(SqsQueueTest, OpenReportsAMissingQueueByName) {
  const std::string name = UniqueName("missing");
  auto opened = SqsQueue::Open(client_, name);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound);
  EXPECT_NE(opened.status().message().find(name), std::string::npos) << opened.status().message();
  EXPECT_NE(opened.status().message().find("NonExistentQueue"), std::string::npos) << opened.status().message();
}

TEST_F(SqsQueueTest, OpenReportsAQueueWithoutADeadLetterQueue) {
  const std::string name = UniqueName("no-dlq");
  ASSERT_TRUE(client_->Call(kSqs, "CreateQueue", {{"QueueName", name}}).ok());
  auto opened = SqsQueue::Open(client_, name);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(name), std::string::npos) << opened.status().message();
  EXPECT_NE(opened.status().message().find("RedrivePolicy"), std::string::npos) << opened.status().message();
}

TEST_F(SqsQueueTest, OpenReportsAMissingDeadLetterQueueByName) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(client_->Call(kSqs, "DeleteQueue", {{"QueueUrl", queue->DeadLetterUrl()}}).ok());
  auto opened = SqsQueue::Open(client_, name_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find(name_ + "-dlq"), std::string::npos) << opened.status().message();
}

TEST_F(SqsQueueTest, CreateQueuesIsIdempotentAndAppliesANewMaxReceives) {
  const std::string name = UniqueName("create");
  ASSERT_TRUE(SqsQueue::CreateQueues(*client_, name, 3).ok());
  const Status again = SqsQueue::CreateQueues(*client_, name, 3);
  ASSERT_TRUE(again.ok()) << again.ToString();
  auto opened = SqsQueue::Open(client_, name);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->MaxReceives(), 3);
  EXPECT_NE((*opened)->DeadLetterUrl().find(name + "-dlq"), std::string::npos) << (*opened)->DeadLetterUrl();

  const Status changed = SqsQueue::CreateQueues(*client_, name, 7);
  ASSERT_TRUE(changed.ok()) << changed.ToString();
  auto reopened = SqsQueue::Open(client_, name);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->MaxReceives(), 7);
}

TEST_F(SqsQueueTest, CreateQueuesRefusesWhatSqsWouldRefuse) {
  EXPECT_EQ(SqsQueue::CreateQueues(*client_, std::string(77, 'a'), 3).code(), StatusCode::kInvalidArgument)
      << "80 characters at most with '-dlq'";
  EXPECT_EQ(SqsQueue::CreateQueues(*client_, "has space", 3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SqsQueue::CreateQueues(*client_, "", 3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SqsQueue::CreateQueues(*client_, UniqueName("limits"), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SqsQueue::CreateQueues(*client_, UniqueName("limits"), 1001).code(), StatusCode::kInvalidArgument);
}

TEST_F(SqsQueueTest, OpenRefusesOptionsOutOfRange) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  SqsQueueOptions too_long;
  too_long.wait_time = seconds(21);
  EXPECT_EQ(SqsQueue::Open(client_, name_, too_long).status().code(), StatusCode::kInvalidArgument);
  SqsQueueOptions no_hold;
  no_hold.hold = seconds(0);
  EXPECT_EQ(SqsQueue::Open(client_, name_, no_hold).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqsQueueTest, BodiesThatAreNotSqsTextTravelAsBase64MarkedByAnAttribute) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  const std::string binary("\x00\x01\xff", 3);
  ASSERT_TRUE(queue->Send(binary).ok());
  ASSERT_TRUE(queue->Send("text, even \xc3\xa9 and \xf0\x9f\x94\x8b").ok());
  ASSERT_TRUE(queue->Send("").ok());
  ASSERT_TRUE(queue->Send("a control character \x01").ok());
  ASSERT_TRUE(queue->Send("a lone surrogate \xed\xa0\x80").ok());
  ASSERT_TRUE(queue->Send("U+FFFE \xef\xbf\xbe").ok());
  ASSERT_TRUE(queue->Send("overlong \xc0\xaf").ok());

  const auto raw = RawMessages(queue->Url());
  ASSERT_EQ(raw.size(), 7u) << raw.dump();
  const auto encoding = [](const nlohmann::json& message) -> std::string {
    if (!message.contains("MessageAttributes")) return "";
    return message["MessageAttributes"][std::string(SqsQueue::kEncodingAttribute)]["StringValue"];
  };
  EXPECT_EQ(raw[0]["Body"], "AAH/");
  EXPECT_EQ(encoding(raw[0]), "base64");
  EXPECT_EQ(raw[1]["Body"], "text, even \xc3\xa9 and \xf0\x9f\x94\x8b");
  EXPECT_EQ(encoding(raw[1]), "") << "SQS text goes as it is";
  EXPECT_EQ(raw[2]["Body"], "-") << "SQS refuses an empty body";
  EXPECT_EQ(encoding(raw[2]), "empty");
  EXPECT_EQ(encoding(raw[3]), "base64");
  EXPECT_EQ(encoding(raw[4]), "base64");
  EXPECT_EQ(encoding(raw[5]), "base64");
  EXPECT_EQ(encoding(raw[6]), "base64");

  auto received = queue->Receive(10, seconds(30));
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  ASSERT_EQ(received->size(), 7u);
  EXPECT_EQ((*received)[0].body, binary);
  EXPECT_EQ((*received)[1].body, "text, even \xc3\xa9 and \xf0\x9f\x94\x8b");
  EXPECT_EQ((*received)[2].body, "");
  EXPECT_EQ((*received)[3].body, "a control character \x01");
  EXPECT_EQ((*received)[4].body, "a lone surrogate \xed\xa0\x80");
  EXPECT_EQ((*received)[5].body, "U+FFFE \xef\xbf\xbe");
  EXPECT_EQ((*received)[6].body, "overlong \xc0\xaf");
}

TEST_F(SqsQueueTest, MessagesOfOtherProducersAreDeliveredAsTheirText) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(client_->Call(kSqs, "SendMessage", {{"QueueUrl", queue->Url()}, {"MessageBody", "plain"}}).ok());
  // Claims base64 but is not: delivered as its text rather than blocking the queue.
  ASSERT_TRUE(
      client_
          ->Call(kSqs, "SendMessage",
                 {{"QueueUrl", queue->Url()},
                  {"MessageBody", "not base64!"},
                  {"MessageAttributes",
                   {{std::string(SqsQueue::kEncodingAttribute), {{"DataType", "String"}, {"StringValue", "base64"}}}}}})
          .ok());
  auto received = queue->Receive(10, seconds(30));
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  ASSERT_EQ(received->size(), 2u);
  EXPECT_EQ((*received)[0].body, "plain");
  EXPECT_EQ((*received)[1].body, "not base64!");
}

TEST_F(SqsQueueTest, AVisibilityTimeoutIsRoundedUpToWholeSeconds) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send("m").ok());
  const auto received_at = SteadyClock::now();
  auto first = queue->Receive(1, milliseconds(1001));  // 2 s on SQS
  const auto answered_at = SteadyClock::now();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // SQS started the timeout between received_at and answered_at.
  std::this_thread::sleep_until(received_at + milliseconds(1500));
  auto early = queue->Receive(1, seconds(30));
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->empty()) << "not visible again before the time asked for";
  std::this_thread::sleep_until(answered_at + milliseconds(2200));
  auto again = queue->Receive(1, seconds(30));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].receive_count, 2);
}

TEST_F(SqsQueueTest, AReceiptWorksOnlyOnTheObjectThatReceivedIt) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  auto other = SqsQueue::Open(client_, name_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(queue->Send("m").ok());
  auto received = queue->Receive(1, seconds(30));
  ASSERT_TRUE(received.ok());
  ASSERT_EQ(received->size(), 1u);
  EXPECT_EQ((*other)->Delete((*received)[0].receipt).code(), StatusCode::kNotFound);
  EXPECT_EQ((*other)->DeadLetter((*received)[0].receipt).code(), StatusCode::kNotFound);
  EXPECT_TRUE(queue->Delete((*received)[0].receipt).ok());
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight + stats->dead_letter, 0u);
}

// The deviation from the embedded backends that the header documents: once its visibility timeout
// has run out a receipt is refused even when nobody has received the message since, because SQS
// might have, and an old receipt handle may still delete the message there.
TEST_F(SqsQueueTest, AReceiptWhoseVisibilityTimeoutRanOutIsNotFoundAndTheMessageComesBack) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->Send("slow handler").ok());
  auto received = queue->Receive(1, seconds(1));
  ASSERT_TRUE(received.ok());
  ASSERT_EQ(received->size(), 1u);
  std::this_thread::sleep_for(milliseconds(1100));
  EXPECT_EQ(queue->Delete((*received)[0].receipt).code(), StatusCode::kNotFound);
  auto again = queue->Receive(1, seconds(30));
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].id, (*received)[0].id);
  EXPECT_TRUE(queue->Delete((*again)[0].receipt).ok());
}

TEST_F(SqsQueueTest, DeadLettersMovedBySqsReportMaxReceivesHoweverOftenTheyArePeeked) {
  auto queue = MakeQueue(2);
  ASSERT_NE(queue, nullptr);
  auto id = queue->Send("poison");
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 2; ++i) ASSERT_EQ(queue->Receive(1, seconds(0))->size(), 1u);
  EXPECT_TRUE(queue->Receive(1, seconds(0))->empty());  // SQS moves it
  for (int peek = 0; peek < 3; ++peek) {
    auto dead = queue->PeekDeadLetters(10);
    ASSERT_TRUE(dead.ok()) << dead.status().ToString();
    ASSERT_EQ(dead->size(), 1u);
    EXPECT_EQ((*dead)[0].id, *id);
    EXPECT_EQ((*dead)[0].receive_count, 2) << "peek " << peek;
    EXPECT_EQ((*dead)[0].body, "poison");
  }
}

TEST_F(SqsQueueTest, DeadLetterKeepsTheMessagesIdSentTimeAndReceiveCount) {
  auto queue = MakeQueue(5);
  ASSERT_NE(queue, nullptr);
  const std::string binary("\x08\x96\x01\x00", 4);
  auto id = queue->Send(binary);
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(queue->Receive(1, seconds(0))->size(), 1u);
  auto received = queue->Receive(1, seconds(30));
  ASSERT_TRUE(received.ok());
  ASSERT_EQ(received->size(), 1u);
  ASSERT_TRUE(queue->DeadLetter((*received)[0].receipt).ok());
  auto dead = queue->PeekDeadLetters(1);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, *id);
  EXPECT_EQ((*dead)[0].body, binary);
  EXPECT_EQ((*dead)[0].receive_count, 2);
  EXPECT_EQ((*dead)[0].sent_at, (*received)[0].sent_at);
  EXPECT_EQ((*dead)[0].receipt, "");
}

TEST_F(SqsQueueTest, MoreThanTenDeadLettersArePeekedAndRedrivenAll) {
  auto queue = MakeQueue(3);
  ASSERT_NE(queue, nullptr);
  std::set<std::string> bodies;
  for (int batch = 0; batch < 2; ++batch) {
    std::vector<std::string> messages;
    messages.reserve(7);
    for (int i = 0; i < 7; ++i) messages.push_back("m" + std::to_string(batch * 7 + i));
    ASSERT_TRUE(queue->SendBatch(messages).ok());
    bodies.insert(messages.begin(), messages.end());
  }
  for (int round = 0; round < 2; ++round) {
    auto received = queue->Receive(10, seconds(60));
    ASSERT_TRUE(received.ok());
    for (const auto& m : *received) ASSERT_TRUE(queue->DeadLetter(m.receipt).ok());
  }
  auto peeked = queue->PeekDeadLetters(100);
  ASSERT_TRUE(peeked.ok()) << peeked.status().ToString();
  std::set<std::string> peeked_bodies;
  for (const auto& m : *peeked) peeked_bodies.insert(m.body);
  EXPECT_EQ(peeked_bodies, bodies);
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letter, 14u);

  auto moved = queue->RedriveDeadLetters(100);  // the peek left them visible
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 14u);
  stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 14u);
  EXPECT_EQ(stats->dead_letter, 0u);
}

TEST_F(SqsQueueTest, LongPollingReturnsAMessageAsSoonAsItIsSent) {
  SqsQueueOptions options;
  options.wait_time = seconds(3);
  auto queue = MakeQueue(3, options);
  ASSERT_NE(queue, nullptr);
  auto start = SteadyClock::now();
  auto empty = queue->Receive(1, seconds(30));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_GE(SteadyClock::now() - start, milliseconds(2500)) << "waited for a message";

  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(500));
    EXPECT_TRUE(queue->Send("late").ok());
  });
  start = SteadyClock::now();
  auto received = queue->Receive(1, seconds(30));
  sender.join();
  ASSERT_TRUE(received.ok());
  ASSERT_EQ(received->size(), 1u);
  EXPECT_EQ((*received)[0].body, "late");
  EXPECT_LT(SteadyClock::now() - start, milliseconds(2900));
}

}  // namespace
}  // namespace pwrcell::adapters::aws
