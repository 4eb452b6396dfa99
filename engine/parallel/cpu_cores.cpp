#include "engine/parallel/cpu_cores.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace fdl {

int physical_cores() {
    // Count distinct (physical id, core id) pairs in /proc/cpuinfo.
    std::ifstream in("/proc/cpuinfo");
    std::set<std::pair<int, int>> cores;
    std::string line;
    int phys = 0;
    while (std::getline(in, line)) {
        auto val = [&] { return std::stoi(line.substr(line.find(':') + 1)); };
        try {
            if (line.rfind("physical id", 0) == 0) phys = val();
            else if (line.rfind("core id", 0) == 0) cores.insert({phys, val()});
        } catch (...) {
        }
    }
    int n = int(cores.size());
    if (n <= 0) n = int(std::thread::hardware_concurrency());
    return n > 0 ? n : 1;
}

}  // namespace fdl
