// fastdllm rm: remove a model from the Hugging Face cache.
#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "hub/cache.h"
#include "hub/pull.h"
#include "hub/settings.h"

namespace fdl::cli {

int cmd_rm(int argc, char** argv, int first) {
    ArgParser p("rm", "ORG/NAME");
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help() << "\nRemoves a model (every revision, and unfinished downloads) from the Hugging Face cache.\n";
        return 0;
    }
    if (rest.size() != 1) throw UsageError{"give one model: ORG/NAME"};
    hub::RepoRef ref;
    std::string why;
    if (!hub::parse_repo_ref(rest[0], ref, &why)) throw UsageError{"'" + rest[0] + "': " + why};
    if (ref.revision_given) throw UsageError{"rm removes a whole repository (every revision): give ORG/NAME without @" + ref.revision};
    const uint64_t bytes = hub::remove_cached(hub::HubSettings::from_environment().cache_dir, ref.repo);
    std::printf("removed %s (%s)\n", ref.repo.c_str(), hub::human_bytes(bytes).c_str());
    return 0;
}

}  // namespace fdl::cli
