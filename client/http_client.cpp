#include "client/http_client.h"

#include <curl/curl.h>

#include <mutex>

namespace fdl::client {

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    char errbuf[CURL_ERROR_SIZE] = {};
    HttpReply reply;
    size_t max_bytes = 0;
    bool overflow = false;
    const std::function<bool(const char*, size_t)>* receive = nullptr;
    bool stopped_by_receiver = false;

    explicit Transfer(const std::string& url, const HttpOptions& o) {
        global_init();
        easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, long(o.connect_timeout_s * 1000));
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, long(o.stall_timeout_s));
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "fastdllm-chat");
        curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
        for (const std::string& h : o.headers) headers = curl_slist_append(headers, h.c_str());
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    }
    ~Transfer() {
        if (easy) curl_easy_cleanup(easy);
        if (headers) curl_slist_free_all(headers);
    }
    Transfer(const Transfer&) = delete;
    Transfer& operator=(const Transfer&) = delete;

    static size_t on_write(char* data, size_t size, size_t n, void* self_) {
        auto* self = static_cast<Transfer*>(self_);
        const size_t bytes = size * n;
        long status = 0;
        curl_easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &status);
        if (self->receive && status == 200) {
            if (!(*self->receive)(data, bytes)) {
                self->stopped_by_receiver = true;
                return 0;  // curl stops with CURLE_WRITE_ERROR
            }
            return bytes;
        }
        if (self->reply.body.size() + bytes > self->max_bytes) {
            self->overflow = true;
            return 0;
        }
        self->reply.body.append(data, bytes);
        return bytes;
    }

    void finish(CURLcode rc) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply.status);
        if (rc == CURLE_OK) {
            reply.ok = true;
        } else if (stopped_by_receiver) {
            reply.aborted = true;
        } else if (overflow) {
            reply.error = "the answer is larger than " + std::to_string(max_bytes >> 20) + " MB";
        } else {
            reply.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        }
    }
};

}  // namespace

HttpReply http_get(const std::string& url, const HttpOptions& opts, size_t max_bytes) {
    Transfer t(url, opts);
    t.max_bytes = max_bytes;
    curl_easy_setopt(t.easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(t.easy, CURLOPT_TIMEOUT_MS, long((opts.connect_timeout_s + 30) * 1000));
    if (t.headers) curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, t.headers);
    t.finish(curl_easy_perform(t.easy));
    return std::move(t.reply);
}

HttpReply http_post_stream(const std::string& url, const HttpOptions& opts, const std::string& body,
                           const std::function<bool(const char*, size_t)>& receive, const std::atomic<bool>* abort) {
    Transfer t(url, opts);
    t.max_bytes = 1u << 20;  // an error's body
    t.receive = &receive;
    t.headers = curl_slist_append(t.headers, "Content-Type: application/json");
    t.headers = curl_slist_append(t.headers, "Accept: text/event-stream");
    curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(t.easy, CURLOPT_POST, 1L);
    curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.size()));

    CURLM* multi = curl_multi_init();
    curl_multi_add_handle(multi, t.easy);
    int running = 1;
    CURLcode result = CURLE_OK;
    bool aborted = false;
    while (running) {
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            result = CURLE_FAILED_INIT;
            break;
        }
        if (abort && abort->load()) {
            aborted = true;
            break;
        }
        if (running) curl_multi_poll(multi, nullptr, 0, 50, nullptr);
    }
    if (!aborted) {
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &left))
            if (m->msg == CURLMSG_DONE && m->easy_handle == t.easy) result = m->data.result;
    }
    curl_multi_remove_handle(multi, t.easy);
    curl_multi_cleanup(multi);
    if (aborted) {
        curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.reply.status);
        t.reply.aborted = true;
        return std::move(t.reply);
    }
    t.finish(result);
    return std::move(t.reply);
}

}  // namespace fdl::client
