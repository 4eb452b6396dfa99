#include "app/args.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace fdl::cli {

std::vector<std::string> ArgParser::parse(int argc, char** argv, int first) {
    std::vector<std::string> pos;
    for (int i = first; i < argc; i++) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            help_ = true;
            continue;
        }
        if (a == "--") {
            for (i++; i < argc; i++) pos.emplace_back(argv[i]);
            break;
        }
        if (a.size() < 2 || a[0] != '-' || (a[1] != '-' && !std::isalpha((unsigned char)a[1]))) {
            pos.push_back(a);  // includes negative numbers and "-"
            continue;
        }
        std::string value;
        bool inline_value = false;
        if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
            value = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
            inline_value = true;
        }
        const Option* opt = nullptr;
        for (auto& o : options_)
            if (a == o.long_flag || (!o.short_flag.empty() && a == o.short_flag)) opt = &o;
        if (!opt) throw UsageError{"unknown option " + a + " (see: fastdllm " + command_ + " --help)"};
        if (opt->value_name.empty()) {
            if (inline_value) throw UsageError{a + " takes no value"};
            opt->apply("");
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= argc) throw UsageError{a + " needs a value (" + opt->value_name + ")"};
            value = argv[++i];
        }
        opt->apply(value);
    }
    return pos;
}

std::string ArgParser::help() const {
    std::string s = "usage: fastdllm " + command_ + " " + synopsis_ + "\n\noptions:\n";
    for (auto& o : options_) {
        std::string flags = o.short_flag.empty() ? "    " + o.long_flag : o.short_flag + ", " + o.long_flag;
        if (!o.value_name.empty()) flags += " " + o.value_name;
        s += "  " + flags;
        s += flags.size() < 28 ? std::string(28 - flags.size(), ' ') : "\n" + std::string(30, ' ');
        s += o.help + "\n";
    }
    s += "  -h, --help                  show this help\n";
    return s;
}

int parse_int(const std::string& flag, const std::string& v, long lo, long hi) {
    errno = 0;
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || errno) throw UsageError{flag + ": '" + v + "' is not an integer"};
    if (x < lo || x > hi)
        throw UsageError{flag + ": " + v + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"};
    return int(x);
}

float parse_float(const std::string& flag, const std::string& v, double lo, double hi) {
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || errno || x != x) throw UsageError{flag + ": '" + v + "' is not a number"};
    if (x < lo || x > hi)
    {
        char buf[96];
        std::snprintf(buf, sizeof buf, " is out of range [%g, %g]", lo, hi);
        throw UsageError{flag + ": " + v + buf};
    }
    return float(x);
}

unsigned long long parse_u64(const std::string& flag, const std::string& v) {
    errno = 0;
    char* end = nullptr;
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || *end || errno) throw UsageError{flag + ": '" + v + "' is not a non-negative integer"};
    return x;
}

std::vector<int32_t> parse_id_list(const std::string& flag, const std::string& v) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i <= v.size()) {
        size_t j = v.find_first_of(", ", i);
        if (j == std::string::npos) j = v.size();
        std::string item = v.substr(i, j - i);
        if (!item.empty()) ids.push_back(int32_t(parse_int(flag, item, 0, INT32_MAX)));
        i = j + 1;
    }
    if (ids.empty()) throw UsageError{flag + ": no token ids given"};
    return ids;
}

}  // namespace fdl::cli
