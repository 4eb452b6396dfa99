// The subcommands of the fastdllm binary. Each returns the process exit code.
#pragma once
#include <string>

#include "app/args.h"
#include "app/model_dir.h"
#include "engine/chat/chat_service.h"
#include "engine/decode/generate.h"

namespace fdl::cli {

int cmd_generate(int argc, char** argv, int first);
int cmd_tokenize(int argc, char** argv, int first);
int cmd_info(int argc, char** argv, int first);
int cmd_chat(int argc, char** argv, int first);
int cmd_bench(int argc, char** argv, int first);
int cmd_mkmodel(int argc, char** argv, int first);
int cmd_pull(int argc, char** argv, int first);
int cmd_list(int argc, char** argv, int first);
int cmd_rm(int argc, char** argv, int first);
int cmd_serve(int argc, char** argv, int first);

// The decoding flags shared by generate and chat (--mode, --threshold, --cache, ...).
struct DecodeFlags {
    GenerateOptions gen;
    std::optional<DecodeMode> decoder;  // --mode ar|diffusion (empty: the model's natural decoder)
    ChatMode chat_mode = ChatMode::Single;  // --mode compare (chat only)
    int threads = 0;
    std::optional<WeightType> dtype;  // weights in memory (empty: auto)
};
void add_decode_flags(ArgParser& p, DecodeFlags& f);
// Resolves "" mode to the model's kind and applies the thread count. Returns the thread count.
int finish_decode_flags(DecodeFlags& f, bool model_is_diffusion, int model_block_size);

}  // namespace fdl::cli
