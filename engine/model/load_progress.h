// A progress line for loading a model: a checkpoint of several GB takes seconds to read, and a
// silent terminal for that long looks hung.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace fdl {

// For LoadOptions::progress: calls show("45% (1.4 of 3.1 GB)") once the load has taken half a
// second (the demo models load in milliseconds and show nothing) and then once per percent, and
// finished() at the end if anything was shown.
std::function<void(uint64_t done, uint64_t total)> load_progress(std::function<void(const std::string&)> show,
                                                                 std::function<void()> finished = {});

// The same as "loading NAME: 45% (1.4 of 3.1 GB)" on stderr, rewritten in place and erased at
// the end. Nothing when stderr is not a terminal.
std::function<void(uint64_t done, uint64_t total)> stderr_load_progress(const std::string& name);

}  // namespace fdl
