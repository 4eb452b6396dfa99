// HTTP for the remote chat, through libcurl (http and https, proxies from the environment): a
// GET whose small answer is kept in memory, and a POST whose answer is handed over piece by
// piece as it arrives (a server-sent event stream), stopped within 50 ms when asked.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace fdl::client {

struct HttpReply {
    long status = 0;          // the HTTP status (0: no answer came)
    bool ok = false;          // the transfer itself finished (whatever the status)
    bool aborted = false;     // stopped by the abort flag or by the receiver
    std::string error;        // why the transfer failed, one line (when !ok and !aborted)
    std::string body;         // get(); post_stream(): the body of a status other than 200
};

struct HttpOptions {
    std::vector<std::string> headers;  // "Name: value"
    double connect_timeout_s = 10;
    // A transfer that receives nothing for this long fails (a streaming server sends comments
    // while a request waits).
    double stall_timeout_s = 600;
};

// GET url; the answer (up to max_bytes) in body.
HttpReply http_get(const std::string& url, const HttpOptions& opts, size_t max_bytes = 16u << 20);

// POST `body` (application/json) to url. While the status is 200 each piece of the answer goes to
// `receive` (returning false stops the transfer); the body of any other status is kept in
// reply.body. `abort` is checked every 50 ms.
HttpReply http_post_stream(const std::string& url, const HttpOptions& opts, const std::string& body,
                           const std::function<bool(const char* data, size_t n)>& receive,
                           const std::atomic<bool>* abort);

}  // namespace fdl::client
