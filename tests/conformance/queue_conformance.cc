// The Queue contract (ports/queue.h), run on every backend in backends.cc. Time moves only
// through Backend::AdvanceTime, in whole seconds, so that a backend on real SQS can sleep.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends.h"

namespace pwrcell::conformance {
namespace {

using ports::ReceivedMessage;
using std::chrono::seconds;

constexpr int kMaxReceives = 3;
constexpr Duration kVisibility = seconds(2);

class QueueConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    queue_ = backend_->MakeQueue(kMaxReceives);
    ASSERT_NE(queue_, nullptr);
  }

  std::string MustSend(const std::string& body, ports::Queue* queue = nullptr) {
    auto id = (queue != nullptr ? queue : queue_.get())->Send(body);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }

  std::vector<ReceivedMessage> MustReceive(std::size_t max, Duration visibility = kVisibility,
                                           ports::Queue* queue = nullptr) {
    auto received = (queue != nullptr ? queue : queue_.get())->Receive(max, visibility);
    EXPECT_TRUE(received.ok()) << received.status().ToString();
    return received.ok() ? *received : std::vector<ReceivedMessage>{};
  }

  ports::QueueStats MustStats(ports::Queue* queue = nullptr) {
    auto stats = (queue != nullptr ? queue : queue_.get())->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok() ? *stats : ports::QueueStats{};
  }

  static std::vector<std::string> Bodies(const std::vector<ReceivedMessage>& messages) {
    std::vector<std::string> bodies;
    bodies.reserve(messages.size());
    for (const auto& m : messages) bodies.push_back(m.body);
    return bodies;
  }

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<ports::Queue> queue_;
};

void ExpectStats(const ports::QueueStats& stats, std::size_t visible, std::size_t in_flight, std::size_t dead) {
  EXPECT_EQ(stats.visible, visible);
  EXPECT_EQ(stats.in_flight, in_flight);
  EXPECT_EQ(stats.dead_letter, dead);
}

TEST_P(QueueConformance, SendReceiveDelete) {
  const std::string id = MustSend("hello");
  auto received = MustReceive(10);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].id, id);
  EXPECT_EQ(received[0].body, "hello");
  EXPECT_EQ(received[0].receive_count, 1);
  EXPECT_FALSE(received[0].receipt.empty());
  ExpectStats(MustStats(), 0, 1, 0);
  ASSERT_TRUE(queue_->Delete(received[0].receipt).ok());
  ExpectStats(MustStats(), 0, 0, 0);
  backend_->AdvanceTime(kVisibility);
  EXPECT_TRUE(MustReceive(10).empty());
}

TEST_P(QueueConformance, AnEmptyQueueReceivesNothing) {
  EXPECT_TRUE(MustReceive(10).empty());
  ExpectStats(MustStats(), 0, 0, 0);
}

TEST_P(QueueConformance, BodiesAreOpaqueBytes) {
  const std::string binary("\0\x01\xff\xfe{\"json\":true}\n", 18);
  MustSend(binary);
  MustSend("");
  auto received = MustReceive(10);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].body, binary);
  EXPECT_EQ(received[1].body, "");
}

TEST_P(QueueConformance, ReceivesOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i) ids.push_back(MustSend("m" + std::to_string(i)));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 5u) << "ids are unique";
  auto first = MustReceive(3);
  EXPECT_EQ(Bodies(first), (std::vector<std::string>{"m1", "m2", "m3"}));
  auto rest = MustReceive(10);
  EXPECT_EQ(Bodies(rest), (std::vector<std::string>{"m4", "m5"}));
  EXPECT_EQ(first[0].id, ids[0]);
  EXPECT_EQ(rest[1].id, ids[4]);
}

TEST_P(QueueConformance, SendBatchStoresAllInOrder) {
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < ports::kMaxQueueBatch; ++i) bodies.push_back("b" + std::to_string(i));
  auto ids = queue_->SendBatch(bodies);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), ports::kMaxQueueBatch);
  auto received = MustReceive(ports::kMaxQueueBatch);
  EXPECT_EQ(Bodies(received), bodies);
  for (std::size_t i = 0; i < received.size(); ++i) EXPECT_EQ(received[i].id, (*ids)[i]);
}

TEST_P(QueueConformance, BatchSizesOutsideTheLimitAreInvalidAndStoreNothing) {
  std::vector<std::string> too_many(ports::kMaxQueueBatch + 1, "x");
  auto big = queue_->SendBatch(too_many);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  auto empty = queue_->SendBatch({});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  ExpectStats(MustStats(), 0, 0, 0);

  MustSend("x");
  for (std::size_t max : {std::size_t{0}, ports::kMaxQueueBatch + 1}) {
    auto received = queue_->Receive(max, kVisibility);
    ASSERT_FALSE(received.ok()) << max;
    EXPECT_EQ(received.status().code(), StatusCode::kInvalidArgument);
  }
  ExpectStats(MustStats(), 1, 0, 0);
}

TEST_P(QueueConformance, BodiesAboveTheSizeLimitAreInvalidAndStoreNothing) {
  const std::string too_big(ports::kMaxQueueMessageBytes + 1, 'x');
  auto one = queue_->Send(too_big);
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(one.status().message().find(std::to_string(too_big.size())), std::string::npos)
      << "the error names the size: " << one.status().ToString();
  auto batch = queue_->SendBatch({"fits", too_big});
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  ExpectStats(MustStats(), 0, 0, 0);

  // The largest body, of bytes that are not text, arrives whole on every backend.
  std::string largest(ports::kMaxQueueMessageBytes, '\0');
  for (std::size_t i = 0; i < largest.size(); ++i) largest[i] = static_cast<char>((i * 7) % 256);
  const std::string id = MustSend(largest);
  auto received = MustReceive(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].id, id);
  EXPECT_TRUE(received[0].body == largest) << "the body of " << received[0].body.size() << " bytes differs";
}

TEST_P(QueueConformance, ReceiveReturnsAtMostTheBatchLimit) {
  for (int i = 0; i < 15; ++i) MustSend("m" + std::to_string(i));
  EXPECT_EQ(MustReceive(ports::kMaxQueueBatch).size(), ports::kMaxQueueBatch);
  EXPECT_EQ(MustReceive(ports::kMaxQueueBatch).size(), 5u);
  ExpectStats(MustStats(), 0, 15, 0);
}

TEST_P(QueueConformance, VisibilityTimeoutsOutsideTheLimitAreInvalid) {
  MustSend("x");
  for (Duration bad : {Duration(-1), ports::kMaxVisibilityTimeout + Duration(1)}) {
    auto received = queue_->Receive(1, bad);
    ASSERT_FALSE(received.ok());
    EXPECT_EQ(received.status().code(), StatusCode::kInvalidArgument);
  }
  auto received = MustReceive(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(queue_->ChangeVisibility(received[0].receipt, Duration(-1)).code(), StatusCode::kInvalidArgument);
}

TEST_P(QueueConformance, AMessageNotDeletedComesBackAfterItsVisibilityTimeoutAndNotBefore) {
  const std::string id = MustSend("work");
  auto first = MustReceive(1, seconds(2));
  ASSERT_EQ(first.size(), 1u);

  backend_->AdvanceTime(seconds(1));
  EXPECT_TRUE(MustReceive(10).empty());
  ExpectStats(MustStats(), 0, 1, 0);

  backend_->AdvanceTime(seconds(1));
  ExpectStats(MustStats(), 1, 0, 0);
  auto second = MustReceive(10);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id);
  EXPECT_EQ(second[0].body, "work");
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_EQ(second[0].sent_at, first[0].sent_at);
  EXPECT_NE(second[0].receipt, first[0].receipt);
}

TEST_P(QueueConformance, ChangeVisibilityZeroMakesAMessageVisibleNow) {
  MustSend("retry me");
  auto first = MustReceive(1, seconds(30));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(queue_->ChangeVisibility(first[0].receipt, Duration::zero()).ok());
  ExpectStats(MustStats(), 1, 0, 0);
  auto again = MustReceive(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 2);
}

TEST_P(QueueConformance, ChangeVisibilityExtendsTheTimeout) {
  MustSend("slow");
  auto first = MustReceive(1, seconds(1));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(queue_->ChangeVisibility(first[0].receipt, seconds(3)).ok());
  backend_->AdvanceTime(seconds(2));
  EXPECT_TRUE(MustReceive(1).empty());
  backend_->AdvanceTime(seconds(1));
  EXPECT_EQ(MustReceive(1).size(), 1u);
}

TEST_P(QueueConformance, AMessageReceivedMaxReceivesTimesIsDeadLetteredOnTheNextReceive) {
  const std::string id = MustSend("poison");
  std::string last_receipt;
  for (int delivery = 1; delivery <= kMaxReceives; ++delivery) {
    auto received = MustReceive(1, Duration::zero());
    ASSERT_EQ(received.size(), 1u) << "delivery " << delivery;
    EXPECT_EQ(received[0].receive_count, delivery);
    last_receipt = received[0].receipt;
  }
  ExpectStats(MustStats(), 1, 0, 0);

  EXPECT_TRUE(MustReceive(10, Duration::zero()).empty());
  ExpectStats(MustStats(), 0, 0, 1);
  EXPECT_TRUE(MustReceive(10, Duration::zero()).empty()) << "a dead letter is never handed out again";

  auto dead = queue_->PeekDeadLetters(10);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, id);
  EXPECT_EQ((*dead)[0].body, "poison");
  EXPECT_EQ((*dead)[0].receive_count, kMaxReceives);
  EXPECT_EQ(queue_->Delete(last_receipt).code(), StatusCode::kNotFound);
  ExpectStats(MustStats(), 0, 0, 1);
}

TEST_P(QueueConformance, ADeadLetterDoesNotStarveTheMessagesBehindIt) {
  MustSend("poison");
  for (int i = 0; i < kMaxReceives; ++i) ASSERT_EQ(MustReceive(1, Duration::zero()).size(), 1u);
  MustSend("healthy");
  std::vector<ReceivedMessage> received;
  for (int attempt = 0; attempt < 3 && received.empty(); ++attempt) received = MustReceive(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].body, "healthy");
  EXPECT_EQ(MustStats().dead_letter, 1u);
}

TEST_P(QueueConformance, PeekDeadLettersListsOldestFirstAndKeepsThem) {
  MustSend("d1");
  MustSend("d2");
  MustSend("alive");
  for (int i = 0; i < kMaxReceives; ++i) {
    auto received = MustReceive(2, Duration::zero());
    ASSERT_EQ(received.size(), 2u);
    for (const auto& m : received) EXPECT_NE(m.body, "alive");
  }
  auto alive = MustReceive(1);  // dead-letters d1 and d2 on the way
  ASSERT_EQ(alive.size(), 1u);
  EXPECT_EQ(alive[0].body, "alive");
  auto one = queue_->PeekDeadLetters(1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(Bodies(*one), (std::vector<std::string>{"d1"}));
  auto both = queue_->PeekDeadLetters(10);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(Bodies(*both), (std::vector<std::string>{"d1", "d2"}));
  EXPECT_EQ(queue_->PeekDeadLetters(0).status().code(), StatusCode::kInvalidArgument);
  ExpectStats(MustStats(), 0, 1, 2);
}

TEST_P(QueueConformance, DeadLetterMovesAnInFlightMessageToTheDeadLetterStoreAtOnce) {
  MustSend("poison");
  MustSend("fine");
  auto first = MustReceive(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(queue_->DeadLetter(first[0].receipt).ok());
  auto stats = MustStats();
  EXPECT_EQ(stats.dead_letter, 1u);
  EXPECT_EQ(stats.visible, 1u);
  EXPECT_EQ(stats.in_flight, 0u);
  backend_->AdvanceTime(seconds(3));  // past the visibility timeout: it must not come back
  EXPECT_EQ(Bodies(MustReceive(10)), std::vector<std::string>{"fine"});
  auto dead = queue_->PeekDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].body, "poison");
  EXPECT_EQ(queue_->DeadLetter(first[0].receipt).code(), StatusCode::kNotFound);
}

TEST_P(QueueConformance, RedriveBringsADeadLetterBackAsANewMessage) {
  const std::string original_id = MustSend("poison");
  auto first = MustReceive(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(queue_->DeadLetter(first[0].receipt).ok());
  MustSend("queued meanwhile");
  ExpectStats(MustStats(), 1, 0, 1);

  auto moved = queue_->RedriveDeadLetters(10);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 1u);
  ExpectStats(MustStats(), 2, 0, 0);
  auto dead = queue_->PeekDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->empty());

  auto received = MustReceive(10);
  EXPECT_EQ(Bodies(received), (std::vector<std::string>{"queued meanwhile", "poison"})) << "it queues last";
  ASSERT_EQ(received.size(), 2u);
  const ReceivedMessage& redriven = received[1];
  EXPECT_EQ(redriven.receive_count, 1) << "receive_count starts again";
  EXPECT_NE(redriven.id, original_id);
  EXPECT_EQ(queue_->Delete(first[0].receipt).code(), StatusCode::kNotFound)
      << "a receipt of a delivery before the dead-lettering cannot touch the redriven message";
  ASSERT_TRUE(queue_->Delete(redriven.receipt).ok());
  ASSERT_TRUE(queue_->Delete(received[0].receipt).ok());
  ExpectStats(MustStats(), 0, 0, 0);
}

TEST_P(QueueConformance, ARedrivenMessageGetsMaxReceivesDeliveriesAgain) {
  MustSend("flaky");
  for (int i = 0; i < kMaxReceives; ++i) ASSERT_EQ(MustReceive(1, Duration::zero()).size(), 1u);
  EXPECT_TRUE(MustReceive(1, Duration::zero()).empty());  // dead-letters it
  ExpectStats(MustStats(), 0, 0, 1);

  auto moved = queue_->RedriveDeadLetters(1);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  ASSERT_EQ(*moved, 1u);
  for (int delivery = 1; delivery <= kMaxReceives; ++delivery) {
    auto received = MustReceive(1, Duration::zero());
    ASSERT_EQ(received.size(), 1u) << "delivery " << delivery;
    EXPECT_EQ(received[0].receive_count, delivery);
    EXPECT_EQ(received[0].body, "flaky");
  }
  EXPECT_TRUE(MustReceive(1, Duration::zero()).empty());
  ExpectStats(MustStats(), 0, 0, 1);
}

TEST_P(QueueConformance, RedriveOfAnEmptyDeadLetterStoreMovesNothing) {
  MustSend("alive");
  auto moved = queue_->RedriveDeadLetters(10);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 0u);
  ExpectStats(MustStats(), 1, 0, 0);
  EXPECT_EQ(queue_->RedriveDeadLetters(0).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(QueueConformance, RedriveHonoursItsMaximumAndMovesTheOldestDeadLettersFirst) {
  MustSend("d1");
  MustSend("d2");
  MustSend("d3");
  auto received = MustReceive(3, seconds(60));
  ASSERT_EQ(received.size(), 3u);
  // Dead-lettered in the order d3, d1, d2: the order of dead-lettering, not of sending, counts.
  for (std::size_t index : {2u, 0u, 1u}) {
    ASSERT_TRUE(queue_->DeadLetter(received[index].receipt).ok());
    backend_->AdvanceTime(seconds(1));
  }
  auto moved = queue_->RedriveDeadLetters(2);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 2u);
  ExpectStats(MustStats(), 2, 0, 1);
  auto dead = queue_->PeekDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(Bodies(*dead), (std::vector<std::string>{"d2"}));
  EXPECT_EQ(Bodies(MustReceive(10)), (std::vector<std::string>{"d3", "d1"}));

  auto rest = queue_->RedriveDeadLetters(std::numeric_limits<std::size_t>::max());
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_EQ(*rest, 1u);
  EXPECT_EQ(Bodies(MustReceive(10)), (std::vector<std::string>{"d2"}));
  ExpectStats(MustStats(), 0, 3, 0);
}

TEST_P(QueueConformance, RedriveMovesOnlyItsOwnQueuesDeadLetters) {
  auto other = backend_->MakeQueue(kMaxReceives, "other");
  ASSERT_NE(other, nullptr);
  MustSend("theirs", other.get());
  auto received = MustReceive(1, kVisibility, other.get());
  ASSERT_EQ(received.size(), 1u);
  ASSERT_TRUE(other->DeadLetter(received[0].receipt).ok());

  auto moved = queue_->RedriveDeadLetters(10);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 0u);
  ExpectStats(MustStats(), 0, 0, 0);
  ExpectStats(MustStats(other.get()), 0, 0, 1);
}

TEST_P(QueueConformance, AStaleReceiptCannotDeleteARedeliveredMessage) {
  MustSend("twice");
  auto first = MustReceive(1, seconds(1));
  ASSERT_EQ(first.size(), 1u);
  backend_->AdvanceTime(seconds(1));
  auto second = MustReceive(1, seconds(10));
  ASSERT_EQ(second.size(), 1u);

  EXPECT_EQ(queue_->Delete(first[0].receipt).code(), StatusCode::kNotFound);
  EXPECT_EQ(queue_->ChangeVisibility(first[0].receipt, Duration::zero()).code(), StatusCode::kNotFound);
  ExpectStats(MustStats(), 0, 1, 0);

  ASSERT_TRUE(queue_->Delete(second[0].receipt).ok());
  ExpectStats(MustStats(), 0, 0, 0);
}

TEST_P(QueueConformance, DeletingTwiceIsNotFound) {
  MustSend("once");
  auto received = MustReceive(1);
  ASSERT_EQ(received.size(), 1u);
  ASSERT_TRUE(queue_->Delete(received[0].receipt).ok());
  EXPECT_EQ(queue_->Delete(received[0].receipt).code(), StatusCode::kNotFound);
}

TEST_P(QueueConformance, MalformedReceiptsAreInvalid) {
  for (const char* receipt : {"", "garbage", "1", "1:", ":1", "x:1", "1:x", "1:0", "0:1", "1:1:1"}) {
    EXPECT_EQ(queue_->Delete(receipt).code(), StatusCode::kInvalidArgument) << "'" << receipt << "'";
    EXPECT_EQ(queue_->ChangeVisibility(receipt, Duration::zero()).code(), StatusCode::kInvalidArgument)
        << "'" << receipt << "'";
  }
}

TEST_P(QueueConformance, StatsCountVisibleAndInFlight) {
  for (int i = 0; i < 5; ++i) MustSend("m" + std::to_string(i));
  ExpectStats(MustStats(), 5, 0, 0);
  auto received = MustReceive(2);
  ASSERT_EQ(received.size(), 2u);
  ExpectStats(MustStats(), 3, 2, 0);
  ASSERT_TRUE(queue_->Delete(received[0].receipt).ok());
  ExpectStats(MustStats(), 3, 1, 0);
  backend_->AdvanceTime(kVisibility);
  ExpectStats(MustStats(), 4, 0, 0);
}

TEST_P(QueueConformance, QueuesWithDifferentNamesAreIndependent) {
  auto other = backend_->MakeQueue(kMaxReceives, "other");
  ASSERT_NE(other, nullptr);
  MustSend("for test");
  MustSend("for other", other.get());
  MustSend("for other 2", other.get());
  ExpectStats(MustStats(), 1, 0, 0);
  ExpectStats(MustStats(other.get()), 2, 0, 0);

  auto mine = MustReceive(10);
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].body, "for test");
  EXPECT_EQ(queue_->Delete(mine[0].receipt).ok(), true);

  auto theirs = MustReceive(10, kVisibility, other.get());
  EXPECT_EQ(Bodies(theirs), (std::vector<std::string>{"for other", "for other 2"}));
  // A receipt of one queue means nothing to another.
  EXPECT_EQ(queue_->Delete(theirs[0].receipt).code(), StatusCode::kNotFound);
  ExpectStats(MustStats(other.get()), 0, 2, 0);
}

TEST_P(QueueConformance, ConcurrentConsumersGetEachMessageOnce) {
  constexpr int kMessages = 60;
  for (int i = 0; i < kMessages; i += 10) {
    std::vector<std::string> batch;
    for (int j = i; j < i + 10; ++j) batch.push_back("m" + std::to_string(j));
    ASSERT_TRUE(queue_->SendBatch(batch).ok());
  }
  std::mutex mutex;
  std::vector<std::string> seen;
  std::atomic<int> errors{0};
  std::vector<std::thread> consumers;
  consumers.reserve(4);
  for (int t = 0; t < 4; ++t) {
    consumers.emplace_back([&] {
      while (true) {
        auto received = queue_->Receive(3, seconds(60));
        if (!received.ok()) {
          ++errors;
          return;
        }
        if (received->empty()) return;
        for (const auto& m : *received) {
          if (!queue_->Delete(m.receipt).ok()) ++errors;
          std::lock_guard lock(mutex);
          seen.push_back(m.body);
        }
      }
    });
  }
  for (auto& c : consumers) c.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), static_cast<std::size_t>(kMessages));
  ExpectStats(MustStats(), 0, 0, 0);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, QueueConformance, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace pwrcell::conformance
