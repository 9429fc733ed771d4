// See sigbus_guard.h. Each guarded thread claims a slot of a fixed table (no allocation, no
// thread-local storage: the handler must stay async-signal-safe), records the mapped range and
// a sigjmp_buf, runs the reads, and releases the slot. The handler looks up the faulting
// thread's slot and, when the fault address is inside its range, jumps back out of the reads.
// The reads are checksum loops over mapped memory: they hold no locks and allocate nothing, so
// abandoning them half way leaves nothing inconsistent.
#include "sigbus_guard.h"

#include <atomic>
#include <mutex>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

namespace {

struct Slot {
  std::atomic<pthread_t> owner{0};
  const uint8_t* lo = nullptr;
  const uint8_t* hi = nullptr;
  sigjmp_buf* jump = nullptr;
};

// libuv's pool has 4 threads by default (UV_THREADPOOL_SIZE can raise it to 1024); a thread
// that finds no free slot is told to read instead.
constexpr int kSlots = 64;
Slot g_slots[kSlots];
struct sigaction g_previous;
std::once_flag g_once;
bool g_installed = false;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const pthread_t self = pthread_self();
  const uint8_t* addr = static_cast<const uint8_t*>(info->si_addr);
  for (Slot& s : g_slots) {
    if (s.owner.load(std::memory_order_acquire) == self) {
      if (s.jump != nullptr && addr >= s.lo && addr < s.hi) siglongjmp(*s.jump, 1);
      break;
    }
  }
  // Not a fault of ours: behave as the previous disposition would.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, context);
    return;
  }
  // Ignored (node resets dispositions at start, but a host embedding the addon may not): one
  // sent by kill(2) is, but a fault (si_code > 0) would only run the faulting instruction
  // again, forever; the kernel itself kills for those.
  if (g_previous.sa_handler == SIG_IGN && info->si_code <= 0) return;
  if (g_previous.sa_handler == SIG_IGN) {
    signal(SIGBUS, SIG_DFL);
    return;  // the instruction faults again, now with the default action
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default: put it back and raise it again; it is delivered with its default action
  // (terminate, core) as this handler returns, whether a fault or kill(2) sent it.
  signal(SIGBUS, SIG_DFL);
  raise(SIGBUS);
}

// Separate frame for sigsetjmp: nothing of this function's locals is used after a jump
// except through the volatile result.
GuardResult Run(Slot* slot, const void* lo, const void* hi, void (*fn)(void*), void* arg) {
  sigjmp_buf jump;
  slot->lo = static_cast<const uint8_t*>(lo);
  slot->hi = static_cast<const uint8_t*>(hi);
  slot->jump = &jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  volatile GuardResult result = GuardResult::kDone;
  if (sigsetjmp(jump, 1) == 0) {
    fn(arg);
  } else {
    result = GuardResult::kFault;
  }
  slot->jump = nullptr;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return result;
}

}  // namespace

bool SigbusGuardInstall() {
  std::call_once(g_once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    g_installed = sigaction(SIGBUS, &sa, &g_previous) == 0;
  });
  return g_installed;
}

GuardResult RunGuarded(const void* lo, const void* hi, void (*fn)(void*), void* arg) {
  if (!g_installed) return GuardResult::kUnavailable;
  const pthread_t self = pthread_self();
  for (Slot& s : g_slots) {
    pthread_t expected = 0;
    if (s.owner.compare_exchange_strong(expected, self, std::memory_order_acq_rel)) {
      GuardResult r = Run(&s, lo, hi, fn, arg);
      s.owner.store(0, std::memory_order_release);
      return r;
    }
  }
  return GuardResult::kUnavailable;
}
