// `fastdllm serve`: a local HTTP server speaking OpenAI's chat and completion API on top of the
// chat service, with the decoding itself streamed as extra chunks (docs/server.md), and a web
// page at / that draws it. Built on cpp-httplib (Debian's libcpp-httplib-dev): a small, well-kept
// library with a thread pool, time-outs, body limits and chunked responses, which is all a local
// server needs.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/chat/chat_service.h"
#include "server/api_request.h"

namespace fdl::server {

struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 8080;              // 0: any free port (port() tells which)
    std::string api_key;          // "": no key asked for
    size_t max_body_bytes = 1 << 20;
    int max_queue = 64;           // requests waiting for the model; one more gets 503
    int read_timeout_s = 10;      // a client that sends nothing for this long is dropped
    int write_timeout_s = 30;     // a client that reads nothing for this long is dropped
    int keep_alive_s = 5;         // an idle connection is closed after this long (or read_timeout_s if shorter)
    int threads = 0;              // connection threads (0: max_queue + 8)
    ApiLimits limits;
    // The decoding settings of a request that names none (the command line's); empty: the model's.
    std::optional<GenerateOptions> defaults;
    std::function<void(const std::string&)> log;  // one line per request (stderr when empty)
};

class HttpServer {
public:
    HttpServer(ChatService& service, ServeOptions opts);
    ~HttpServer();
    // Binds the socket; false with the reason in `error`.
    bool bind(std::string& error);
    int port() const;
    // Serves until stop(); returns at once when bind() failed.
    void run();
    // Ends run(): answers in flight are cancelled and their clients told. Safe from any thread.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace fdl::server
