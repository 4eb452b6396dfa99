// How much memory the process may still take, checked before the big allocations (weights, KV
// cache): on Linux an allocation that does not fit is rarely a clean std::bad_alloc; with
// overcommit it is the OOM killer, which leaves the user no message at all.
#pragma once
#include <cstdint>
#include <string>

namespace fdl {

// Bytes this process can still allocate: MemAvailable from /proc/meminfo, lowered by the cgroup
// limit (its limit minus its anonymous memory) and by RLIMIT_AS (minus the address space in use).
// UINT64_MAX when none of them can be read.
uint64_t available_memory();

// "1.5 GiB", "320 MiB", "12 KiB", "512 B".
std::string format_bytes(uint64_t bytes);

// Throws fdl::Error("<what> needs <need>, but only <avail> of memory is available") when
// `need` exceeds available_memory().
void require_memory(uint64_t need, const std::string& what);

}  // namespace fdl
