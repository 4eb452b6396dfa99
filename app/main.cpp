// fastdllm: chat with block-diffusion language models in the terminal, on the CPU.
#include <cstdio>
#include <cstring>
#include <string>

#include "app/commands.h"
#include "engine/io/error.h"
#include "engine/kernels/kernels.h"
#include "engine/parallel/threads.h"


static const char* kUsage =
    "fastdllm: chat with block-diffusion language models (Fast-dLLM v2) on the CPU\n"
    "\n"
    "usage: fastdllm [COMMAND] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  chat        the terminal chat (default when no command is given)\n"
    "  generate    generate text for one prompt (streams text, or --json)\n"
    "  serve       an OpenAI-compatible HTTP server that streams the decoding, with a web page\n"
    "  tokenize    print the token ids of a text\n"
    "  info        describe a model folder\n"
    "  bench       time forward passes of 1, 8, 32, 512 tokens (a model, or a published shape)\n"
    "  mkmodel     write a random-weight model folder in a published shape\n"
    "  pull        download a model from the Hugging Face hub (ORG/NAME) into its cache\n"
    "  list        the models in the Hugging Face cache\n"
    "  rm          remove a model from the Hugging Face cache\n"
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
#ifdef FASTDLLM_HAVE_UI
    std::printf("chat: ncurses TUI and plain REPL\n");
#else
    std::printf("chat: not built (-DFASTDLLM_UI=OFF)\n");
#endif
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
        if (cmd == "serve") return cmd_serve(argc, argv, shift);
        if (cmd == "pull") return cmd_pull(argc, argv, shift);
        if (cmd == "list") return cmd_list(argc, argv, shift);
        if (cmd == "rm") return cmd_rm(argc, argv, shift);
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
