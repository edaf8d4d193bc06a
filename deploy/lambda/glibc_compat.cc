// The two glibc functions newer than Amazon Linux 2023's glibc (2.34) that the GCC 12 runtime of
// Debian 12 calls, defined here so that an executable linked with -static-libstdc++ -static-libgcc
// (PWRCELL_LAMBDA_STATIC, docs/PACKAGING.md) imports neither from glibc and starts on
// provided.al2023:
// - arc4random (GLIBC_2.36): libstdc++'s std::random_device, used across the code base to seed
//   jitter and ids. Here: getrandom(2) (glibc 2.25), the kernel's CSPRNG, as glibc's own
//   arc4random does.
// - _dl_find_object (GLIBC_2.35): libgcc's unwinder finds the exception-handling frame data of the
//   code it unwinds with it, and has no fallback when it fails (an exception would terminate the
//   program). Here: the same answer from dl_iterate_phdr (glibc 2.2.4), the way GCC 11's libgcc
//   searched: the loaded object whose PT_LOAD segment holds the address, its PT_GNU_EH_FRAME.
// A definition in the executable wins over glibc's for every reference the static link resolves,
// and the linker exports it for shared libraries that reference the name, so everything in the
// process uses these. Both are thread-safe (getrandom; dl_iterate_phdr takes the loader's lock)
// and async-signal-unsafe only where glibc's are.
//
// Only linked into executables of a PWRCELL_LAMBDA_STATIC build (and its test, glibc_compat_test).
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace {

struct Search {
  std::uintptr_t address = 0;
  dl_find_object* result = nullptr;
  bool found = false;
};

int FindObject(dl_phdr_info* info, std::size_t /*size*/, void* data) {
  auto* search = static_cast<Search*>(data);
  bool contains = false;
  std::uintptr_t start = UINTPTR_MAX;
  std::uintptr_t end = 0;
  const ElfW(Phdr)* eh_frame = nullptr;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type == PT_LOAD) {
      const std::uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
      const std::uintptr_t finish = begin + segment.p_memsz;
      if (search->address >= begin && search->address < finish) contains = true;
      if (begin < start) start = begin;
      if (finish > end) end = finish;
    } else if (segment.p_type == DLFO_EH_SEGMENT_TYPE) {
      eh_frame = &segment;
    }
  }
  if (!contains) return 0;
  dl_find_object& out = *search->result;
  std::memset(&out, 0, sizeof out);
  out.dlfo_map_start = reinterpret_cast<void*>(start);
  out.dlfo_map_end = reinterpret_cast<void*>(end);
  out.dlfo_eh_frame = eh_frame == nullptr ? nullptr : reinterpret_cast<void*>(info->dlpi_addr + eh_frame->p_vaddr);
  search->found = true;
  return 1;  // stop iterating
}

}  // namespace

extern "C" {

std::uint32_t arc4random(void) noexcept {
  std::uint32_t value = 0;
  auto* bytes = reinterpret_cast<unsigned char*>(&value);
  std::size_t filled = 0;
  while (filled < sizeof value) {
    const ssize_t n = getrandom(bytes + filled, sizeof value - filled, 0);
    if (n > 0) {
      filled += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      abort();  // as glibc's arc4random: no randomness is not an error a caller can handle
    }
  }
  return value;
}

int _dl_find_object(void* address, dl_find_object* result) noexcept {
  Search search;
  search.address = reinterpret_cast<std::uintptr_t>(address);
  search.result = result;
  dl_iterate_phdr(FindObject, &search);
  if (!search.found) return -1;
  // The loader's record of the object, as glibc fills it in (dladdr1: glibc 2.3.3).
  Dl_info info;
  link_map* map = nullptr;
  if (dladdr1(address, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) != 0) result->dlfo_link_map = map;
  return 0;
}

}  // extern "C"
