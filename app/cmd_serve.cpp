// fastdllm serve: the OpenAI-compatible HTTP server on the chat service.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "app/commands.h"
#include "engine/io/error.h"
#include "engine/model/load_progress.h"
#include "server/http_server.h"

namespace fdl::cli {

namespace {

bool is_loopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

int cmd_serve(int argc, char** argv, int first) {
    std::string model_dir, ar_model_dir;
    int parallel = 4;
    server::ServeOptions so;
    DecodeFlags flags;
    ArgParser p("serve", "[-m DIR] [--ar-model DIR] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [options]");
    p.add({"-m", "--model", "DIR", "model folder, or ORG/NAME in the Hugging Face cache (default: the demo dLLM in assets/)",
           [&](const std::string& v) { model_dir = v; }});
    p.add({"", "--ar-model", "DIR",
           "AR baseline, answered when a request names it in \"model\" (default: demo-ar beside the model)",
           [&](const std::string& v) { ar_model_dir = v; }});
    p.add({"", "--host", "ADDR", "address to listen on (default 127.0.0.1: this machine only)",
           [&](const std::string& v) { so.host = v; }});
    p.add({"", "--port", "N", "port (default 8080; 0 picks a free one)",
           [&](const std::string& v) { so.port = parse_int("--port", v, 0, 65535); }});
    p.add({"", "--api-key", "KEY", "require 'Authorization: Bearer KEY' on /v1/ (default: $FASTDLLM_API_KEY, else none)",
           [&](const std::string& v) { so.api_key = v; }});
    p.add({"", "--parallel", "N",
           "requests decoded at once, their forward passes shared (default 4); more wait in the queue",
           [&](const std::string& v) { parallel = parse_int("--parallel", v, 1, 64); }});
    p.add({"", "--max-queue", "N", "requests that may wait for the model; one more gets 503 (default 64)",
           [&](const std::string& v) { so.max_queue = parse_int("--max-queue", v, 1, 100000); }});
    p.add({"", "--max-body", "BYTES", "largest request body; a larger one gets 413 (default 1048576)",
           [&](const std::string& v) { so.max_body_bytes = size_t(parse_int("--max-body", v, 1024, 1 << 30)); }});
    p.add({"", "--max-tokens-limit", "N", "the largest max_tokens a request may ask for (default 4096)",
           [&](const std::string& v) { so.limits.max_tokens = parse_int("--max-tokens-limit", v, 1, 1 << 20); }});
    p.add({"", "--timeout", "S", "drop a connection idle or stalled for S seconds (default 10)",
           [&](const std::string& v) { so.read_timeout_s = parse_int("--timeout", v, 1, 3600); }});
    add_decode_flags(p, flags);
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help()
                  << "\nThe decoding flags set the defaults; a request may change them with its own fields "
                     "(docs/server.md).\n";
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    if (flags.chat_mode == ChatMode::Compare)
        throw UsageError{"--mode compare is a chat mode; a server request names the AR baseline in \"model\" instead"};
    if (so.api_key.empty())
        if (const char* k = std::getenv("FASTDLLM_API_KEY")) so.api_key = k;
    model_dir = resolve_model_dir(model_dir);
    if (!ar_model_dir.empty()) ar_model_dir = resolve_model_dir(ar_model_dir);

    // SIGINT and SIGTERM go to one thread that stops the server (blocked in every other thread,
    // which inherit this mask).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    ChatServiceOptions co;
    co.model_dir = model_dir;
    co.ar_model_dir = ar_model_dir;
    co.weight_type = flags.dtype;
    co.progress = stderr_load_progress(model_dir);
    co.parallel = parallel;
    ChatService service(co);
    const ModelConfig& cfg = service.config();
    const int threads = finish_decode_flags(flags, cfg.is_diffusion, cfg.bd_size);
    // The decoding flags are every request's defaults; a request's own fields override them.
    GenerateOptions defaults = service.default_options();
    defaults.mode = flags.gen.mode;
    defaults.max_new_tokens = flags.gen.max_new_tokens;
    defaults.block_size = flags.gen.block_size;
    defaults.sub_block_size = flags.gen.sub_block_size;
    defaults.threshold = flags.gen.threshold;
    defaults.cache = flags.gen.cache;
    defaults.unmask = flags.gen.unmask;
    defaults.sampling = flags.gen.sampling;
    so.defaults = defaults;
    if (!ar_model_dir.empty() || cfg.is_diffusion) {
        try {
            service.load_baseline();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "fastdllm serve: no AR baseline: %s\n", e.what());
        }
    }
    server::HttpServer http(service, so);
    std::string error;
    if (!http.bind(error)) throw Error(error);
    if (!is_loopback(so.host) && so.api_key.empty())
        std::fprintf(stderr,
                     "warning: listening on %s without --api-key: anyone who can reach this address can use the model\n",
                     so.host.c_str());
    std::fprintf(stderr, "fastdllm serve: %s (%s, %s, %d thread%s) on http://%s:%d/  (Ctrl-C stops)\n", cfg.name.c_str(),
                 cfg.is_diffusion ? "block diffusion" : "autoregressive", weight_type_name(service.model().weight_type()),
                 threads, threads == 1 ? "" : "s", so.host.find(':') != std::string::npos ? ("[" + so.host + "]").c_str() : so.host.c_str(),
                 http.port());

    std::thread watcher([&] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        if (sig != 0) http.stop();
    });
    http.run();
    http.stop();
    pthread_kill(watcher.native_handle(), SIGTERM);  // wakes the watcher if run() ended otherwise
    watcher.join();
    std::fprintf(stderr, "fastdllm serve: stopped\n");
    return 0;
}

}  // namespace fdl::cli
