// Run code that reads through a file mapping, and survive the file shrinking under it.
//
// A read through a mapping of a file past its current end raises SIGBUS, and so does an I/O
// error behind a mapped page; by default that kills the process. The guard turns such a fault
// in the guarded range, on the guarded thread, into a "false" return, so the caller can fall
// back to read(2), which reports the same condition as an ordinary error. Faults anywhere else
// go to whatever handler was there before (or kill the process, as without us).
#pragma once

#include <stddef.h>

enum class GuardResult { kDone, kFault, kUnavailable };

/** Install the SIGBUS handler (once; from the JS thread). False if sigaction failed. */
bool SigbusGuardInstall();

/** Run fn(arg), which reads only [lo, hi). kFault: it hit SIGBUS in that range and was cut short. */
GuardResult RunGuarded(const void* lo, const void* hi, void (*fn)(void*), void* arg);
