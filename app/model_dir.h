// The model a command uses: the default one, or what -m names.
#pragma once
#include <string>

namespace fdl::cli {

// $FASTDLLM_MODEL, else assets/models/demo-dllm from the source tree or beside the binary.
std::string default_model_dir();

// The folder a -m value (or, when empty, the default) names: an existing path as it is;
// ORG/NAME[@REVISION] the snapshot in the Hugging Face cache (refs/main without @REVISION),
// never downloading; anything else as it is, for the loader to report. Throws fdl::Error
// ("...: not found (...); download it with: fastdllm pull ORG/NAME") for a repository that
// is not in the cache.
std::string resolve_model_dir(const std::string& value);

}  // namespace fdl::cli
