// The one clock the engine and its front ends time things with.
#pragma once
#include <chrono>

namespace fdl {

// Seconds on a monotonic clock (differences only).
inline double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace fdl
