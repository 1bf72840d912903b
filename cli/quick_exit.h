#pragma once

namespace musafarm::cli {

// Ends the process with `code` at once, leaving the release of its memory to
// a child that outlives it by a moment.
//
// Why: a process's exit is not seen by its parent (the shell, a CI script)
// until the kernel has torn down its address space, and for the CLI (a 33 MB
// static binary, seven threads once gRPC has started) that teardown took
// 0.8 ms of the 1.0 ms between exit_group and the parent's wait4 returning,
// for `musafarm submit --watch` (issue 19, perf sched trace in BENCHMARKS.md).
// A child created with CLONE_VM shares the memory, so the exit of this
// process only drops a reference to it; the child waits for that exit (its
// end of a pipe reaches EOF when our copy closes) and then exits itself,
// paying the teardown while the parent has already moved on. The work is the
// same, it is only off the path the user waits on.
//
// The child closes every descriptor but its pipe first, so pipes to our
// stdout and stderr reach EOF when this process exits, as they would
// without it. If the child cannot be made, the exit is a plain _exit.
// Everything the caller wants written must be flushed before this.
//
// Sanitizer builds exit plainly: the child's raw system calls would run on
// the calling thread's sanitizer state (it shares that thread's TLS).
[[noreturn]] void ExitLeavingTeardown(int code);

// What the child does once it has closed the descriptors it inherited (at
// normal priority: the caller's EOF on our stdout must not wait for an idle
// core): it leaves the normal scheduling class for SCHED_IDLE, so that the
// teardown runs on a core that would otherwise idle.
// At normal priority it took 0.6-0.9 ms of CPU (perf sched) from whatever the
// caller ran next (a script's next command, the farm ending its task): on 2
// cores, back-to-back `submit --watch` was 0.13-0.28 ms slower at p50 (issue
// 19, three A/Bs in blocks). An idle-class task still gets a sliver of CPU on
// a busy machine, so the memory is released in the end. Raw system calls
// only (it runs in the child); exposed for its test.
void EnterIdleSchedulingClass();

// Whether ExitLeavingTeardown hands the teardown to a child in this build.
extern const bool kExitHandsOffTeardown;

}  // namespace musafarm::cli
