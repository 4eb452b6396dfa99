#include "hub/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>

namespace fdl::hub {

namespace {

// A connection that delivers less than this for kStallSeconds is given up (then retried).
constexpr long kStallBytesPerSecond = 1;
constexpr long kStallSeconds = 30;
constexpr long kConnectSeconds = 15;

struct Transfer {
    HttpResult* r;
    CURL* curl;
    const std::atomic<bool>* abort;
    // download() only
    int fd = -1;
    uint64_t offset = 0;
    bool checked_status = false;
    const DownloadSink* sink = nullptr;
    size_t max_body = 1 << 16;
};

size_t on_header(char* p, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string line(p, size * n);
    if (line.rfind("HTTP/", 0) == 0) {  // a new response (one per redirect): start over
        t->r->headers.clear();
        return size * n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return size * n;
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    for (char& c : name) c = char(std::tolower((unsigned char)c));
    while (!value.empty() && std::isspace((unsigned char)value.back())) value.pop_back();
    while (!value.empty() && std::isspace((unsigned char)value.front())) value.erase(value.begin());
    t->r->headers[name] = value;
    return size * n;
}

size_t on_body(char* p, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t bytes = size * n;
    if (t->fd < 0 || t->r->status == 0) {  // get(), or the status is not known yet
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        t->r->status = status;
    }
    if (t->fd < 0 || t->r->status >= 300) {  // a JSON answer, or the text of an error
        if (t->r->body.size() + bytes > t->max_body) return 0;
        t->r->body.append(p, bytes);
        return bytes;
    }
    if (!t->checked_status) {
        t->checked_status = true;
        if (t->offset > 0 && t->r->status == 200) {  // the Range was ignored: start the file over
            if (::ftruncate(t->fd, 0) != 0) {
                t->r->write_failed = true;
                t->r->write_errno = errno;
                return 0;
            }
            if (t->sink->restart) t->sink->restart();
        } else if (t->offset > 0) {
            // 206: the part must start where the file ends.
            const std::string range = t->r->header("content-range");
            const size_t sp = range.find(' '), dash = range.find('-');
            if (sp == std::string::npos || dash == std::string::npos ||
                range.substr(sp + 1, dash - sp - 1) != std::to_string(t->offset)) {
                t->r->error = "the server answered a Range request for byte " + std::to_string(t->offset) +
                              " with \"Content-Range: " + range + "\"";
                return 0;
            }
        }
    }
    size_t done = 0;
    while (done < bytes) {
        const ssize_t w = ::write(t->fd, p + done, bytes - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (done > 0 && t->sink->written) t->sink->written(p, done);
            t->r->write_failed = true;
            t->r->write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        done += size_t(w);
    }
    if (t->sink->written) t->sink->written(p, bytes);
    return bytes;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    return t->abort && t->abort->load() ? 1 : 0;
}

void init_curl() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpResult perform(const std::string& url, const std::string& user_agent, const std::string& token, Transfer& t,
                   const std::string& range) {
    init_curl();
    HttpResult& r = *t.r;
    CURL* c = curl_easy_init();
    if (!c) {
        r.error = "cannot start libcurl";
        return r;
    }
    t.curl = c;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    if (!token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, kConnectSeconds);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, kStallBytesPerSecond);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (!range.empty()) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    const CURLcode code = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status) r.status = status;
    r.transport_ok = code == CURLE_OK;
    if (code != CURLE_OK) {
        r.aborted = code == CURLE_ABORTED_BY_CALLBACK;
        r.cannot_connect = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                           code == CURLE_COULDNT_RESOLVE_PROXY;
        r.transient = code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR ||
                      code == CURLE_OPERATION_TIMEDOUT || code == CURLE_GOT_NOTHING || code == CURLE_HTTP2 ||
                      code == CURLE_HTTP2_STREAM || code == CURLE_COULDNT_CONNECT;
        if (r.error.empty()) r.error = errbuf[0] ? errbuf : curl_easy_strerror(code);
        if (code == CURLE_OPERATION_TIMEDOUT && status > 0)
            r.error = "no data for " + std::to_string(kStallSeconds) + " s (" + r.error + ")";
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return r;
}

}  // namespace

HttpClient::HttpClient(std::string user_agent, std::string token, const std::atomic<bool>* abort)
    : user_agent_(std::move(user_agent)), token_(std::move(token)), abort_(abort) {}

HttpResult HttpClient::get(const std::string& url, size_t max_bytes) const {
    HttpResult r;
    Transfer t{&r, nullptr, abort_};
    t.max_body = max_bytes;
    return perform(url, user_agent_, token_, t, "");
}

HttpResult HttpClient::download(const std::string& url, int fd, uint64_t offset, const DownloadSink& sink) const {
    HttpResult r;
    Transfer t{&r, nullptr, abort_};
    t.fd = fd;
    t.offset = offset;
    t.sink = &sink;
    return perform(url, user_agent_, token_, t, offset > 0 ? std::to_string(offset) + "-" : "");
}

std::string HttpClient::escape(const std::string& s) {
    static const char* kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += char(c);
        else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

}  // namespace fdl::hub
