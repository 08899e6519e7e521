/* A slow disk for tests of real tuttid processes, from outside the product: preloaded
 * (LD_PRELOAD), it makes every fsync, fdatasync and msync of the process wait
 * TUTTI_TEST_SYNC_DELAY_MS milliseconds before it does the real one. LMDB syncs through these. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void wait_like_a_slow_disk(void) {
  const char* text = getenv("TUTTI_TEST_SYNC_DELAY_MS");
  const long ms = text ? atol(text) : 0;
  if (ms <= 0) return;
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0) {
  }
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  wait_like_a_slow_disk();
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  wait_like_a_slow_disk();
  return real(fd);
}

int msync(void* addr, size_t length, int flags) {
  static int (*real)(void*, size_t, int);
  if (!real) real = (int (*)(void*, size_t, int))dlsym(RTLD_NEXT, "msync");
  if (flags & MS_SYNC) wait_like_a_slow_disk();
  return real(addr, length, flags);
}
