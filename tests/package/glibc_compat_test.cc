// deploy/lambda/glibc_compat.cc, linked as the Lambda build links it (-static-libstdc++
// -static-libgcc): its _dl_find_object answers as glibc's does for code in the executable and in
// a shared library, and -1 outside any; libgcc's unwinder, which calls it, still catches an
// exception thrown three frames down; its arc4random and std::random_device give varying values.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

using FindObject = int (*)(void*, dl_find_object*);

void CompareWithGlibc(FindObject glibc, void* address, const std::string& where) {
  dl_find_object ours{};
  dl_find_object theirs{};
  const int our_answer = _dl_find_object(address, &ours);
  const int their_answer = glibc(address, &theirs);
  Check(our_answer == 0 && their_answer == 0, where + ": found by both");
  Check(ours.dlfo_eh_frame != nullptr && ours.dlfo_eh_frame == theirs.dlfo_eh_frame,
        where + ": the same PT_GNU_EH_FRAME");
  Check(ours.dlfo_link_map == theirs.dlfo_link_map, where + ": the same link_map");
  Check(ours.dlfo_map_start <= address && address < ours.dlfo_map_end, where + ": the mapping holds the address");
}

[[gnu::noinline]] void Throw(int depth) {
  if (depth == 0) throw std::runtime_error("from below");
  Throw(depth - 1);
  std::printf("unreachable\n");
}

}  // namespace

int main() {
  // The executable's definition is the one this file calls; glibc's is the next one.
  auto glibc = reinterpret_cast<FindObject>(dlsym(RTLD_NEXT, "_dl_find_object"));
  Check(glibc != nullptr, "glibc has _dl_find_object to compare with (2.35 or newer)");
  if (glibc != nullptr) {
    CompareWithGlibc(glibc, reinterpret_cast<void*>(&Throw), "the executable");
    CompareWithGlibc(glibc, reinterpret_cast<void*>(&dlsym), "a shared library");
  }
  dl_find_object nothing{};
  Check(_dl_find_object(reinterpret_cast<void*>(std::uintptr_t{16}), &nothing) == -1, "no object at 0x10: -1");

  bool caught = false;
  try {
    Throw(3);
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "from below";
  }
  Check(caught, "an exception thrown three frames down is caught");

  std::set<std::uint32_t> values;
  for (int i = 0; i < 8; ++i) values.insert(arc4random());
  Check(values.size() > 1, "arc4random varies");
  std::random_device device;
  std::set<unsigned> seeds;
  for (int i = 0; i < 8; ++i) seeds.insert(device());
  Check(seeds.size() > 1, "std::random_device varies");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
