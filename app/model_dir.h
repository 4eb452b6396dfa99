// The model a command uses when no -m is given.
#pragma once
#include <string>

namespace fdl::cli {

// $FASTDLLM_MODEL, else assets/models/demo-dllm from the source tree or beside the binary.
std::string default_model_dir();

}  // namespace fdl::cli
