// fastdllm: chat with block-diffusion language models in the terminal, on the CPU.
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "app/commands.h"
#include "engine/error.h"
#include "engine/kernels.h"
#include "engine/threads.h"

namespace fdl::cli {

std::string default_model_dir() {
    auto is_dir = [](const std::string& p) {
        struct stat st {};
        return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    };
    if (const char* env = std::getenv("FASTDLLM_MODEL")) return env;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        std::string dir(exe);
        dir = dir.substr(0, dir.find_last_of('/'));
        for (const char* rel : {"/../assets/models/demo-dllm", "/assets/models/demo-dllm", "/../share/fastdllm/models/demo-dllm"})
            if (is_dir(dir + rel)) return dir + rel;
    }
#ifdef FASTDLLM_SOURCE_DIR
    if (is_dir(FASTDLLM_SOURCE_DIR "/assets/models/demo-dllm")) return FASTDLLM_SOURCE_DIR "/assets/models/demo-dllm";
#endif
    return "assets/models/demo-dllm";
}

}  // namespace fdl::cli

static const char* kUsage =
    "fastdllm: chat with block-diffusion language models (Fast-dLLM v2) on the CPU\n"
    "\n"
    "usage: fastdllm [COMMAND] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  chat        the terminal chat (default when no command is given)\n"
    "  generate    generate text for one prompt (streams text, or --json)\n"
    "  tokenize    print the token ids of a text\n"
    "  info        describe a model folder\n"
    "  bench       time forward passes of 1, 8, 32, 512 tokens (a model, or a published shape)\n"
    "  mkmodel     write a random-weight model folder in a published shape\n"
    "\n"
    "Run 'fastdllm COMMAND --help' for the options of a command; 'fastdllm --version' for the build.\n";

#ifndef FASTDLLM_VERSION
#define FASTDLLM_VERSION "unknown"
#endif

// What a bug report needs: the version, the compiler, and the kernels this CPU gets.
static void print_version() {
    std::printf("fastdllm %s\n", FASTDLLM_VERSION);
#if defined(__clang__)
    std::printf("compiler: %s\n", __VERSION__);
#else
    std::printf("compiler: gcc %s\n", __VERSION__);
#endif
    std::printf("kernels: %s (FASTDLLM_KERNELS=avx2|portable forces another path)\n", fdl::kernel_path_name());
    std::printf("threads: %d by default (physical cores)\n", fdl::physical_cores());
}

int main(int argc, char** argv) {
    using namespace fdl::cli;
    std::string cmd = argc > 1 ? argv[1] : "chat";
    int shift = argc > 1 ? 2 : 1;
    if (argc > 1 && argv[1][0] == '-') {
        if (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (!std::strcmp(argv[1], "--version")) {
            print_version();
            return 0;
        }
        cmd = "chat";  // options without a command belong to chat
        shift = 1;
    }
    try {
        if (cmd == "chat") return cmd_chat(argc, argv, shift);
        if (cmd == "generate") return cmd_generate(argc, argv, shift);
        if (cmd == "tokenize") return cmd_tokenize(argc, argv, shift);
        if (cmd == "info") return cmd_info(argc, argv, shift);
        if (cmd == "bench") return cmd_bench(argc, argv, shift);
        if (cmd == "mkmodel") return cmd_mkmodel(argc, argv, shift);
        std::fprintf(stderr, "fastdllm: unknown command '%s' (see: fastdllm --help)\n", cmd.c_str());
        return 2;
    } catch (const UsageError& e) {
        std::fprintf(stderr, "fastdllm %s: %s\n", cmd.c_str(), e.message.c_str());
        return 2;
    } catch (const fdl::Error& e) {
        std::fprintf(stderr, "fastdllm: error: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "fastdllm: error: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fastdllm: error: %s\n", e.what());
        return 1;
    }
}
