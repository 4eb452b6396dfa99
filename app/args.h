// A small declarative command-line parser: each option names its flags, whether it takes a
// value, its help line, and what to do with the value. Errors are one line, exit code 2.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace fdl::cli {

struct UsageError {
    std::string message;
};

struct Option {
    std::string short_flag;  // "-m" or ""
    std::string long_flag;   // "--model"
    std::string value_name;  // "" for a switch
    std::string help;
    std::function<void(const std::string&)> apply;
};

class ArgParser {
public:
    ArgParser(std::string command, std::string synopsis) : command_(std::move(command)), synopsis_(std::move(synopsis)) {}
    void add(Option o) { options_.push_back(std::move(o)); }
    // Parses argv[first..]; returns positional arguments. Throws UsageError.
    std::vector<std::string> parse(int argc, char** argv, int first);
    std::string help() const;
    bool help_requested() const { return help_; }

private:
    std::string command_, synopsis_;
    std::vector<Option> options_;
    bool help_ = false;
};

// Value parsers that explain what is wrong ("--threshold: 'x' is not a number").
int parse_int(const std::string& flag, const std::string& v, long lo, long hi);
float parse_float(const std::string& flag, const std::string& v, double lo, double hi);
unsigned long long parse_u64(const std::string& flag, const std::string& v);
std::vector<int32_t> parse_id_list(const std::string& flag, const std::string& v);

}  // namespace fdl::cli
