// fastdllm list: the models in the Hugging Face cache, with their sizes.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "hub/cache.h"
#include "hub/pull.h"
#include "hub/settings.h"

namespace fdl::cli {

int cmd_list(int argc, char** argv, int first) {
    bool as_json = false;
    ArgParser p("list", "[--json]");
    p.add({"", "--json", "", "print JSON", [&](const std::string&) { as_json = true; }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help() << "\nLists the models in the Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub) with their sizes.\n";
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    const std::string cache = hub::HubSettings::from_environment().cache_dir;
    const std::vector<hub::CachedRepo> repos = hub::list_cached(cache);
    if (as_json) {
        nlohmann::json j = {{"cache", cache}, {"models", nlohmann::json::array()}};
        for (const hub::CachedRepo& r : repos)
            j["models"].push_back({{"model", r.repo},
                                   {"path", r.path},
                                   {"bytes", r.bytes},
                                   {"incomplete_bytes", r.incomplete_bytes},
                                   {"refs", r.refs},
                                   {"snapshots", r.snapshots},
                                   {"complete", r.complete}});
        std::cout << j.dump() << "\n";
        return 0;
    }
    if (repos.empty()) {
        std::printf("no models in the Hugging Face cache at %s (download one with: fastdllm pull ORG/NAME)\n", cache.c_str());
        return 0;
    }
    size_t w = 5;
    for (const hub::CachedRepo& r : repos) w = std::max(w, r.repo.size());
    std::printf("%-*s  %10s  %s\n", int(w), "MODEL", "SIZE", "REVISIONS");
    for (const hub::CachedRepo& r : repos) {
        std::string revs;
        for (const auto& [rev, commit] : r.refs) revs += (revs.empty() ? "" : ", ") + rev + " " + commit.substr(0, 7);
        if (r.refs.empty())
            for (const std::string& s : r.snapshots) revs += (revs.empty() ? "" : ", ") + s.substr(0, 7);
        if (!r.complete) revs += (revs.empty() ? "" : "  ") + std::string("(incomplete: pull it again)");
        if (r.incomplete_bytes) revs += "  (" + hub::human_bytes(r.incomplete_bytes) + " of unfinished downloads)";
        std::printf("%-*s  %10s  %s\n", int(w), r.repo.c_str(), hub::human_bytes(r.bytes).c_str(), revs.c_str());
    }
    std::printf("cache: %s\n", cache.c_str());
    return 0;
}

}  // namespace fdl::cli
