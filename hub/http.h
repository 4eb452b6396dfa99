// HTTP GETs through libcurl, as the hub client needs them: a small JSON answer into memory, and
// a file's content appended to an open file from a byte offset (a Range request), with redirects
// followed, a stalled connection timed out, and an abort flag checked while waiting.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace fdl::hub {

struct HttpResult {
    long status = 0;                            // of the last response (after redirects); 0: none
    bool transport_ok = false;                  // the transfer itself finished (whatever the status)
    bool transient = false;                     // a broken or stalled connection worth retrying
    bool cannot_connect = false;                // no connection could be made at all
    bool aborted = false;                       // the abort flag was set
    bool write_failed = false;                  // writing the file failed; write_errno says why
    int write_errno = 0;
    std::string error;                          // curl's explanation when !transport_ok
    std::map<std::string, std::string> headers; // of the last response; names in lowercase
    std::string body;                           // get(): the body; download(): the body of an error status
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "" : it->second;
    }
};

// Receives the bytes of a download as they are written to the file.
struct DownloadSink {
    std::function<void()> restart;                       // the server ignored the Range: the file was emptied
    std::function<void(const char*, size_t)> written;    // bytes appended to the file
};

class HttpClient {
public:
    // `token`: sent as "Authorization: Bearer" (libcurl leaves it out on a redirect to another host).
    HttpClient(std::string user_agent, std::string token, const std::atomic<bool>* abort = nullptr);
    HttpResult get(const std::string& url, size_t max_bytes = 64u << 20) const;
    // Appends the content at `url` from byte `offset` to the file open as `fd` (O_APPEND). When the
    // server answers 200 to a Range request the file is truncated and sink.restart() called.
    HttpResult download(const std::string& url, int fd, uint64_t offset, const DownloadSink& sink) const;

    static std::string escape(const std::string& s);  // percent-encoding of one path segment

private:
    std::string user_agent_, token_;
    const std::atomic<bool>* abort_;
};

}  // namespace fdl::hub
