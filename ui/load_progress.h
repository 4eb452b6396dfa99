// A progress line for loading a model: a checkpoint of several GB takes seconds to read (about
// 2 s for the 1.5B shape here, several times that from a cold disk), and a silent terminal for
// that long looks hung.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace fdl::ui {

// For LoadOptions::progress: "loading NAME: 45% (1.4 of 3.1 GB)" on stderr, rewritten in place,
// once the load has taken half a second (the demo models load in milliseconds and show nothing),
// and erased when the last tensor is in. Nothing when stderr is not a terminal.
std::function<void(uint64_t done, uint64_t total)> stderr_load_progress(const std::string& name);

// "45% (1.4 of 3.1 GB)"
std::string load_progress_text(uint64_t done, uint64_t total);

}  // namespace fdl::ui
