// The metrics registry and its typed handles (common/metrics.h).
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pwrcell {
namespace {

// The label arity is checked by the compiler.
template <typename Handle>
concept IncrementsWithoutLabels = requires(const Handle& h) { h.Increment(); };
template <typename Handle>
concept IncrementsWithTwoLabels = requires(const Handle& h) { h.Increment({"a", "b"}); };
template <typename Handle>
concept SetsWithoutLabels = requires(const Handle& h) { h.Set(1.0); };
static_assert(IncrementsWithTwoLabels<Counter<2>>);
static_assert(!IncrementsWithoutLabels<Counter<2>>);
static_assert(IncrementsWithoutLabels<Counter<>>);
static_assert(!SetsWithoutLabels<Gauge<1>>);
static_assert(SetsWithoutLabels<Gauge<>>);

TEST(Metrics, TypedHandlesDeclareOnceAndCountUnderTheirLabels) {
  Metrics registry;
  const Counter<2> requests(&registry, "pwrcell_things_total", "Things, by kind and outcome.", {"kind", "outcome"});
  requests.Increment({"a", "ok"});
  requests.Increment({"a", "ok"}, 2);
  requests.Increment({"b", "failed"});
  EXPECT_EQ(requests.Value({"a", "ok"}), 3);
  EXPECT_EQ(registry.Value("pwrcell_things_total", {{"kind", "a"}, {"outcome", "ok"}}), 3);
  EXPECT_EQ(requests.Sum(), 4);

  // A second declaration of the same name (another instance of a component) changes nothing.
  const Counter<2> again(&registry, "pwrcell_things_total", "Other help.", {"kind", "outcome"});
  again.Increment({"a", "ok"});
  EXPECT_EQ(requests.Value({"a", "ok"}), 4);

  const auto declared = registry.Declarations();
  ASSERT_EQ(declared.size(), 1U);
  EXPECT_EQ(declared[0].name, "pwrcell_things_total");
  EXPECT_EQ(declared[0].type, Metrics::Type::kCounter);
  EXPECT_EQ(declared[0].help, "Things, by kind and outcome.");
  EXPECT_EQ(declared[0].label_names, (std::vector<std::string>{"kind", "outcome"}));

  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("# HELP pwrcell_things_total Things, by kind and outcome.\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE pwrcell_things_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("pwrcell_things_total{kind=\"a\",outcome=\"ok\"} 4\n"), std::string::npos) << text;
}

TEST(Metrics, GaugesSetAddAndClear) {
  Metrics registry;
  const Gauge<> up(&registry, "pwrcell_up", "1 while running");
  const Gauge<1> depth(&registry, "pwrcell_depth", "Depth by queue", {"queue"});
  up.Set(1);
  depth.Set({"q1"}, 5);
  depth.Add({"q2"});
  depth.Add({"q2"});
  EXPECT_EQ(up.Value(), 1);
  EXPECT_EQ(depth.Value({"q1"}), 5);
  EXPECT_EQ(depth.Value({"q2"}), 2);
  EXPECT_NE(registry.RenderPrometheus().find("# TYPE pwrcell_depth gauge\n"), std::string::npos);
  depth.Clear();
  EXPECT_EQ(depth.Sum(), 0);
  EXPECT_EQ(registry.RenderPrometheus().find("pwrcell_depth{"), std::string::npos);
}

TEST(Metrics, AnUnboundHandleCountsNothing) {
  const Counter<1> unbound(nullptr, "pwrcell_nothing_total", "never registered", {"k"});
  unbound.Increment({"v"});
  EXPECT_EQ(unbound.Value({"v"}), 0);
  EXPECT_EQ(unbound.name(), "pwrcell_nothing_total");
}

TEST(Metrics, UndeclaredStringSeriesAreNotDeclarations) {
  Metrics registry;
  registry.Increment("pwrcell_adhoc_total");
  EXPECT_TRUE(registry.Declarations().empty());
  registry.Describe("pwrcell_adhoc_total", Metrics::Type::kCounter, "now declared");
  ASSERT_EQ(registry.Declarations().size(), 1U);
  EXPECT_TRUE(registry.Declarations()[0].label_names.empty());
}

}  // namespace
}  // namespace pwrcell
