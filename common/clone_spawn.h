#pragma once

#include <sys/types.h>

namespace musafarm {

// What CloneSpawn starts, already in the form execve takes: the child shares
// the caller's memory until its execve and allocates nothing.
struct ExecRequest {
  const char* path = nullptr;  // as execve takes it (no PATH search)
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* dir = nullptr;  // nullptr: the caller's
  int out_fd = -1;            // becomes stdout and stderr
  bool short_slice = false;   // the caller's slice the shortest until the clone returns (SpawnSlice)
};

// Whether CloneSpawn is built in. Not under AddressSanitizer, ThreadSanitizer
// or MemorySanitizer: the child runs instrumented code on a stack and thread
// state the sanitizer's runtime does not know (ASan poisons the child's frames
// in shadow memory it shares with the caller, TSan would see the caller's
// thread run twice), so those builds keep glibc's posix_spawn (Spawn).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kHaveCloneSpawn = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
inline constexpr bool kHaveCloneSpawn = false;
#else
inline constexpr bool kHaveCloneSpawn = true;
#endif
#else
inline constexpr bool kHaveCloneSpawn = true;
#endif

// Starts `req` as posix_spawn would with Spawn's attributes: a process group
// of its own, every signal's disposition the default and none blocked, stdin
// on /dev/null, stdout and stderr on req.out_fd, in req.dir. Returns 0 with
// *pid set once the child has exec'd, or the errno of what failed in the child
// (the execve's ENOENT, EACCES, ENOEXEC, ...; the chdir's) or of the clone.
// The child is a clone(CLONE_VM | CLONE_VFORK) on a stack of the calling
// thread's, started while the calling thread is pinned to its CPU
// (CallerCpuPin): parent and child stay on one CPU, with no wake-up of an
// idle one in between; with req.short_slice, also with the shortest time
// slice until the clone returns (SpawnSlice), so that the child's execve hands
// the CPU back to it at once. kHaveCloneSpawn must be true.
int CloneSpawn(const ExecRequest& req, pid_t* pid);

}  // namespace musafarm
