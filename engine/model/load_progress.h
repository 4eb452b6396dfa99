// A progress line for loading a model: a checkpoint of several GB takes seconds to read, and a
// silent terminal for that long looks hung.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace fdl {

// What load_progress returns, held in a std::function<void(uint64_t, uint64_t)>
// (LoadOptions::progress). The loader finds it there (std::function::target) and tells it what the
// weights will take in memory, which the line then shows: "45% (6.8 of 15.2 GB read; 4.5 GB as
// int4)".
class LoadProgressLine {
public:
    LoadProgressLine(std::function<void(const std::string&)> show, std::function<void()> finished);
    void operator()(uint64_t done, uint64_t total) const;
    void set_weights(const std::string& text) const;  // e.g. "4.5 GB as int4"

private:
    struct State;
    std::shared_ptr<State> st_;
};

// For LoadOptions::progress: calls show("45% (1.4 of 3.1 GB read; 3.5 GB as bf16)") once the
// load has taken half a second (the demo models load in milliseconds and show nothing) and then
// once per percent, and finished() at the end if anything was shown.
std::function<void(uint64_t done, uint64_t total)> load_progress(std::function<void(const std::string&)> show,
                                                                 std::function<void()> finished = {});

// The same as "loading NAME: 45% (1.4 of 3.1 GB read; 3.5 GB as bf16)" on stderr, rewritten in
// place and erased at the end. Nothing when stderr is not a terminal.
std::function<void(uint64_t done, uint64_t total)> stderr_load_progress(const std::string& name);

}  // namespace fdl
