#include "server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/decode/stop_tokens.h"
#include "engine/decode/text_stream.h"
#include "engine/io/clock.h"
#include "server/api_response.h"
#include "server/stop_strings.h"
#include "server/web_page.h"

namespace fdl::server {

using json = nlohmann::json;

namespace {

// Compares a presented key with the server's in time that depends only on the server key's
// length, so a client cannot learn the key a byte at a time from response times.
bool key_matches(const std::string& given, const std::string& key) {
    volatile unsigned char diff = given.size() == key.size() ? 0 : 1;
    for (size_t i = 0; i < key.size(); i++) diff = diff | (i < given.size() ? given[i] ^ key[i] : key[i] ^ 0xff);
    return diff == 0;
}

void send_json(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_json(e)); }

ApiError api_error(int status, const std::string& type, const std::string& message, const std::string& code = "") {
    ApiError e;
    e.status = status;
    e.type = type;
    e.message = message;
    e.code = code;
    return e;
}

std::string random_id(const char* prefix) {
    static std::atomic<uint64_t> counter{0};
    const uint64_t n = counter++ ^ (uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) << 8);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s-%016llx", prefix, (unsigned long long)n);
    return buf;
}

// One answer in flight: the service's events turned into the text the client gets.
struct Answer {
    AnswerId id;
    ApiRequest api;
    uint64_t job = 0;
    ChatEventQueue events;
    std::unique_ptr<TextStream> text;
    std::unique_ptr<StopStrings> stops;
    const Tokenizer* tok = nullptr;
    const char* finish = nullptr;  // "stop" or "length" once known
    DecodeStats stats;
    std::string error;
    bool done = false;
    bool cut = false;  // the answer was cut (stop string, token limit): the rest was cancelled
    bool cancelled = false;  // Done came marked cancelled (the answer is not whole)
    std::string full;  // the whole text so far
    double started = 0;

    // Applies one event: returns the text that is now final; `step` is filled when the event is
    // a forward pass the client asked to see.
    std::string apply(ChatEvent& e, ChatService& svc, json& step) {
        std::string out;
        switch (e.kind) {
            case ChatEvent::Kind::Decode: {
                const DecodeEvent& ev = e.decode;
                if (api.include_steps && ev.type == DecodeEvent::Type::Step) step = step_json(ev, tok);
                if (ev.type == DecodeEvent::Type::Step || ev.type == DecodeEvent::Type::Started)
                    stats = ev.stats;
                if (cut) break;
                out = stops->push(text->on_event(ev));
                if (ev.type == DecodeEvent::Type::Finished && !stops->hit()) out += stops->finish();
                if (stops->hit() || text->stopped()) finish = "stop";
                else if (text->limited()) finish = "length";
                else if (ev.type == DecodeEvent::Type::Finished) finish = "length";  // max tokens, or cancelled
                if (finish && ev.type != DecodeEvent::Type::Finished) {
                    cut = true;
                    svc.cancel(job);  // nothing more of this answer is needed
                }
                break;
            }
            case ChatEvent::Kind::LaneFinished:
                if (e.result) stats = e.result->stats;
                error = e.error;
                if (!finish) finish = "length";
                break;
            case ChatEvent::Kind::Done:
                done = true;
                cancelled = e.cancelled;
                break;
            default: break;
        }
        full += out;
        return out;
    }
    int completion_tokens() const { return text->tokens() - (text->stopped() ? 1 : 0); }
};

}  // namespace

struct HttpServer::Impl {
    ChatService& svc;
    ServeOptions opts;
    httplib::Server http;
    int port = 0;
    std::atomic<bool> stopping{false};
    std::mutex log_mu;
    std::map<const httplib::Request*, int> completion_tokens;  // for the log line
    std::map<const httplib::Request*, double> started;

    Impl(ChatService& s, ServeOptions o) : svc(s), opts(std::move(o)) {}

    void log(const std::string& line) {
        std::lock_guard<std::mutex> lk(log_mu);
        if (opts.log) opts.log(line);
        else std::fprintf(stderr, "%s\n", line.c_str());
    }
    void log_request(const httplib::Request& req, int status, int tokens, double seconds) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " %d %d tokens %.3f s", status, tokens, seconds);
        log(req.method + " " + req.path + buf);
    }

    void setup();
    void completions(const httplib::Request& req, const std::string& body, httplib::Response& res, bool chat);
    void models(httplib::Response& res);
};

void HttpServer::Impl::setup() {
    const int threads = opts.threads > 0 ? opts.threads : opts.max_queue + 8;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    http.set_payload_max_length(opts.max_body_bytes);
    http.set_read_timeout(opts.read_timeout_s, 0);
    http.set_write_timeout(opts.write_timeout_s, 0);
    http.set_keep_alive_timeout(std::min(opts.keep_alive_s, opts.read_timeout_s));

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        {
            std::lock_guard<std::mutex> lk(log_mu);
            started[&req] = now_seconds();
        }
        res.set_header("Access-Control-Allow-Origin", "*");
        if (req.method == "OPTIONS") {
            res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
            res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            res.status = 204;
            return httplib::Server::HandlerResponse::Handled;
        }
        if (!opts.api_key.empty() && req.path.rfind("/v1/", 0) == 0) {
            const std::string auth = req.get_header_value("Authorization");
            const std::string bearer = "Bearer ";
            const std::string given = auth.rfind(bearer, 0) == 0 ? auth.substr(bearer.size()) : "";
            if (!key_matches(given, opts.api_key)) {
                send_error(res, api_error(401, "invalid_request_error", "a valid API key is required (Authorization: Bearer KEY)",
                                          "invalid_api_key"));
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (res.status == 404)
            send_error(res, api_error(404, "invalid_request_error", "no such endpoint: " + req.method + " " + req.path));
        else if (res.status == 413)
            send_error(res, api_error(413, "invalid_request_error", "the request body is too large"));
        else
            send_error(res, api_error(res.status, "invalid_request_error", "the request could not be served"));
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        send_error(res, api_error(500, "server_error", what));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        double t0 = 0;
        int tokens = 0;
        bool streamed = false;
        {
            std::lock_guard<std::mutex> lk(log_mu);
            auto it = started.find(&req);
            if (it != started.end()) t0 = it->second, started.erase(it);
            auto tk = completion_tokens.find(&req);
            if (tk != completion_tokens.end()) {
                tokens = tk->second;
                streamed = tokens < 0;
                completion_tokens.erase(tk);
            }
        }
        if (!streamed) log_request(req, res.status, tokens, t0 > 0 ? now_seconds() - t0 : 0);
    });

    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, {{"status", "ok"}, {"model", svc.config().name}, {"queued", svc.queued()}});
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { models(res); });
    // The body is read here, whatever its Content-Type: cpp-httplib would refuse one sent as a
    // form (what `curl -d` sends) above 8 KB with a 413, and parse it as a form.
    auto with_body = [this](bool chat) {
        return [this, chat](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
            if (req.is_multipart_form_data()) {  // left unread: the connection ends with this answer
                res.set_header("Connection", "close");
                return send_error(res, api_error(400, "invalid_request_error", "the request body is not valid JSON"));
            }
            std::string body;
            if (!read([&](const char* data, size_t n) {
                    body.append(data, n);
                    return true;
                }))
                return;  // too large (413) or cut short (400): the status is set
            completions(req, body, res, chat);
        };
    };
    http.Post("/v1/chat/completions", with_body(true));
    http.Post("/v1/completions", with_body(false));
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(web_page_html(), "text/html; charset=utf-8");
    });
}

void HttpServer::Impl::models(httplib::Response& res) {
    json data = json::array();
    const ModelConfig& c = svc.config();
    data.push_back({{"id", c.name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "fastdllm"},
                    {"meta", {{"architecture", c.architecture}, {"diffusion", c.is_diffusion}, {"block_size", c.bd_size},
                              {"context", c.max_position_embeddings}, {"parameters", c.parameter_count()},
                              {"eos_token_ids", c.eos_token_ids}, {"history_turns", c.chat_history_turns}}}});
    if (const std::string b = svc.baseline_name(); !b.empty() && b != c.name)
        data.push_back({{"id", b}, {"object", "model"}, {"created", 0}, {"owned_by", "fastdllm"},
                        {"meta", {{"role", "AR baseline"}}}});
    send_json(res, 200, {{"object", "list"}, {"data", data}});
}

void HttpServer::Impl::completions(const httplib::Request& req, const std::string& body, httplib::Response& res,
                                   bool chat) {
    auto a = std::make_shared<Answer>();
    a->started = now_seconds();
    if (auto e = parse_api_request(body, chat, opts.defaults ? *opts.defaults : svc.default_options(), opts.limits, a->api))
        return send_error(res, *e);
    ApiRequest& api = a->api;
    const std::string baseline = svc.baseline_name();
    ChatRequest r;
    r.gen = api.gen;
    r.baseline = !api.model.empty() && api.model != svc.config().name && api.model == baseline;
    if (r.baseline) r.gen.mode = DecodeMode::AR;
    Model& model = svc.model();
    a->tok = &model.tokenizer();
    if (chat) r.messages = api.messages;
    else r.prompt_ids = model.tokenizer().encode(api.prompt);
    const int64_t n = svc.prompt_tokens(r);
    const int64_t room = max_prompt_tokens(svc.config(), r.gen);
    if (n > room)
        return send_error(res, api_error(400, "invalid_request_error",
                                         "the prompt has " + std::to_string(n) + " tokens, but with max_tokens " +
                                             std::to_string(r.gen.max_new_tokens) + " the model's context of " +
                                             std::to_string(svc.config().max_position_embeddings) +
                                             " positions leaves room for " + std::to_string(std::max<int64_t>(room, 0)),
                                         "context_length_exceeded"));
    if (stopping) return send_error(res, api_error(503, "server_error", "the server is shutting down"));
    if (svc.queued() >= size_t(opts.max_queue))
        return send_error(res, api_error(503, "server_error",
                                         "the server is busy: " + std::to_string(svc.queued()) + " requests are waiting",
                                         "queue_full"));
    a->text = std::make_unique<TextStream>(a->tok, stop_tokens_of(svc.config(), r.gen));
    a->text->set_token_limit(api.max_tokens);
    a->stops = std::make_unique<StopStrings>(api.stop);
    a->id = {random_id(chat ? "chatcmpl" : "cmpl"), int64_t(std::time(nullptr)), api.model.empty() ? svc.config().name : api.model, chat};
    a->job = svc.submit(r, a->events.sink());

    if (!api.stream) {
        json step;
        while (!a->done) {
            ChatEvent e;
            const bool got = a->events.wait_next(e, 0.5);
            if (stopping) svc.cancel(a->job);  // also one submitted while stop() ran
            if (got) a->apply(e, svc, step);
        }
        if (stopping && a->cancelled && !a->cut)
            return send_error(res, api_error(503, "server_error", "the server is shutting down"));
        if (!a->error.empty()) return send_error(res, api_error(500, "server_error", a->error));
        {
            std::lock_guard<std::mutex> lk(log_mu);
            completion_tokens[&req] = a->completion_tokens();
        }
        send_json(res, 200,
                  completion_json(a->id, a->full, a->finish, usage_json(a->stats, a->completion_tokens()),
                                  timings_json(a->stats, r.gen.mode)));
        return;
    }

    {
        std::lock_guard<std::mutex> lk(log_mu);
        completion_tokens[&req] = -1;  // logged when the stream ends
    }
    const DecodeMode decoder = r.gen.mode;
    const httplib::Request* rq = &req;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, a, decoder](size_t, httplib::DataSink& sink) {
            auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
            auto client_gone = [&] {
                svc.cancel(a->job);
                return false;
            };
            if (!write(sse(delta_chunk(a->id, "", true, nullptr)))) return client_gone();
            double last_write = now_seconds();
            while (!a->done) {
                ChatEvent e;
                const bool got = a->events.wait_next(e, 0.25);
                if (stopping) svc.cancel(a->job);  // also one submitted while stop() ran
                if (!got) {
                    // A comment line now and then: a client that went away is noticed even while
                    // the request waits in the queue.
                    if (now_seconds() - last_write > 1) {
                        if (!write(": waiting\n\n")) return client_gone();
                        last_write = now_seconds();
                    }
                    continue;
                }
                json step;
                const std::string delta = a->apply(e, svc, step);
                if (!step.is_null() && !write(sse(step_chunk(a->id, step)))) return client_gone();
                if (!delta.empty() && !write(sse(delta_chunk(a->id, delta, false, nullptr)))) return client_gone();
                last_write = now_seconds();
            }
            if (stopping && a->cancelled && !a->cut) {
                write(sse(error_json(api_error(503, "server_error", "the server is shutting down"))));
            } else if (!a->error.empty()) {
                write(sse(error_json(api_error(500, "server_error", a->error))));
            } else {
                write(sse(delta_chunk(a->id, "", false, a->finish)));
                if (a->api.include_usage)
                    write(sse(usage_chunk(a->id, usage_json(a->stats, a->completion_tokens()), timings_json(a->stats, decoder))));
            }
            write("data: [DONE]\n\n");
            sink.done();
            return true;
        },
        [this, a, rq](bool ok) {
            log_request(*rq, ok ? 200 : 499, a->completion_tokens(), now_seconds() - a->started);
        });
}

HttpServer::HttpServer(ChatService& service, ServeOptions opts) : impl_(std::make_unique<Impl>(service, std::move(opts))) {
    impl_->setup();
}

HttpServer::~HttpServer() { stop(); }

bool HttpServer::bind(std::string& error) {
    if (impl_->opts.port == 0) {
        impl_->port = impl_->http.bind_to_any_port(impl_->opts.host);
        if (impl_->port > 0) return true;
    } else if (impl_->http.bind_to_port(impl_->opts.host, impl_->opts.port)) {
        impl_->port = impl_->opts.port;
        return true;
    }
    error = "cannot listen on " + impl_->opts.host + ":" + std::to_string(impl_->opts.port) +
            " (in use, or not an address of this machine)";
    return false;
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::run() {
    if (impl_->port > 0) impl_->http.listen_after_bind();
}

void HttpServer::stop() {
    if (impl_->stopping.exchange(true)) return;
    impl_->svc.cancel_all();
    impl_->http.stop();
}

}  // namespace fdl::server
