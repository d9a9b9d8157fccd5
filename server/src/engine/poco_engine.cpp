// The fallback engine: Poco's HTTPServer, thread per connection. Poco types end here.
//
// Sizing: each keep-alive connection holds a pool thread until it is idle for
// keep_alive_timeout or has served max_keep_alive_requests. Up to max_threads connections
// are served at once; the next max_queued wait for a free thread and are refused beyond
// that. Defaults (512 threads, 1024 queued, 5 s) answer 256 concurrent keep-alive clients
// without any of them waiting.
//
// Strictness. Poco 1.11 reads the request head itself (HTTPRequest::read, MessageHeader::read)
// before any code of ours runs. By then it has joined obs-folded lines, decoded RFC 2047
// words (`=?UTF-8?B?Y2h1bmtlZA==?=` reads as "chunked"), dropped header lines without a
// colon, and stopped at a bare CR with its own plain-text 400; it parses Content-Length with
// NumberParser ("1,3" is 13, "+5" is 5) and closes without an answer on one it cannot parse;
// and its chunked stream ends a body silently at a malformed chunk line or at end of input.
// None of that can be undone here. What the adapter still sees it checks before dispatch
// (check_head): version (505), target length (414) and control bytes, header count and head
// size (431, as far as Poco's own limits of 100 fields, 8 KiB per value and 16 KiB of target
// let a request through), field names that are not tokens (white space before the colon),
// control bytes in values, exactly one Host on HTTP/1.1, Content-Length digits only and never
// with Transfer-Encoding, a last transfer coding of chunked (a coding list Poco cannot frame
// gets 501), and a too-large Content-Length (413, before any 100 Continue). A body shorter
// than its Content-Length is never dispatched. Every refusal of ours is problem+json with
// Connection: close, followed by a lingering read so the client gets to read it.
//
// Deadlines. Poco has only per-read (SO_RCVTIMEO) timeouts, so:
//   - header_timeout bounds the wait for a new connection's first byte (Poco's first poll) and
//     each read of a head, not the whole head: a client that trickles its head faster than
//     header_timeout per read holds its thread for as long as it likes;
//   - body_timeout likewise bounds each read of a body, not the whole body;
//   - send_timeout is set as SO_SNDTIMEO (Poco itself sets no send timeout on a server
//     socket): "no progress for this long" per send() call, and one answer takes several
//     calls, so a client that stops reading is cut off after a few send_timeouts (about
//     3 x send_timeout measured with 32 KiB answers), not after one; after a failed send the
//     connection closes instead of reading the next request;
//   - keep_alive_timeout is Poco's own idle poll between requests.
// The event engine keeps whole-head and whole-body deadlines (http1.cpp).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <istream>
#include <optional>
#include <string_view>

#include <netinet/in.h>
#include <sys/socket.h>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include "engine/engine.hpp"
#include "http/problem.hpp"
#include "http/request_id.hpp"

namespace trellis::engine {
namespace {

// Poco's SocketAddress::toString() cost about as much as the rest of translate(); IPv4,
// the common case, is written here in the same "a.b.c.d:port" form, the rest by Poco.
std::string format_address(const Poco::Net::SocketAddress& address) {
    if (address.family() != Poco::Net::SocketAddress::IPv4) return address.toString();
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.addr());
    const auto* bytes = reinterpret_cast<const unsigned char*>(&in->sin_addr.s_addr);
    char text[sizeof "255.255.255.255:65535"];
    char* end = text + sizeof text;
    char* out = text;
    for (int i = 0; i < 4; ++i) {
        // Each octet leaves room for its separator, so no write can pass `end` even on
        // to_chars' error path (which g++ 12 otherwise flags in optimised builds).
        out = std::to_chars(out, end - 1, static_cast<unsigned>(bytes[i])).ptr;
        *out++ = i < 3 ? '.' : ':';
    }
    out = std::to_chars(out, end, ntohs(in->sin_port)).ptr;
    return std::string(text, out);
}

struct Refusal {
    int status;
    std::string_view code;
    std::string_view detail;
};

bool is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool has_control(std::string_view text, bool allow_tab) {
    return std::any_of(text.begin(), text.end(), [allow_tab](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return (byte < 0x20 && !(allow_tab && byte == '\t')) || byte == 0x7f;
    });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_absolute_form(std::string_view uri) {
    return (uri.size() >= 7 && http::iequals(uri.substr(0, 7), "http://")) ||
           (uri.size() >= 8 && http::iequals(uri.substr(0, 8), "https://"));
}

// The origin-form part of a target (RFC 9112 §3.2.2: absolute form is accepted).
std::string_view origin_form(std::string_view uri) {
    if (!is_absolute_form(uri)) return uri;
    const auto authority = uri.find("://") + 3;
    const auto rest = uri.find_first_of("/?", authority);
    if (rest == std::string_view::npos) return "/";
    return uri.substr(rest);
}

// What the adapter can still check of a head Poco has parsed (see the top of this file).
std::optional<Refusal> check_head(const Poco::Net::HTTPServerRequest& in, const Options& options) {
    const std::string& version = in.getVersion();
    const bool http11 = version == Poco::Net::HTTPMessage::HTTP_1_1;
    if (!http11 && version != Poco::Net::HTTPMessage::HTTP_1_0)
        return Refusal{505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are served."};
    const std::string& uri = in.getURI();
    if (uri.size() > options.max_uri_bytes) return Refusal{414, "uri_too_long", "The request target is too long."};
    if (has_control(uri, false))
        return Refusal{400, "bad_request", "The request target contains a control character."};
    if (is_absolute_form(uri)) {
        const auto authority = uri.find("://") + 3;
        if (authority >= uri.size() || uri[authority] == '/' || uri[authority] == '?')
            return Refusal{400, "bad_request", "The request target has no authority."};
    } else if (uri.empty() || (uri.front() != '/' && !(uri == "*" && in.getMethod() == "OPTIONS"))) {
        return Refusal{400, "bad_request", "The request target must be a path."};
    }
    if (in.size() > static_cast<std::size_t>(options.max_headers))
        return Refusal{431, "header_fields_too_large", "The request has too many header fields."};

    std::size_t head_bytes = in.getMethod().size() + uri.size() + version.size() + 4 + 2;
    int hosts = 0;
    std::optional<std::string_view> content_length;
    int transfer_encodings = 0;
    std::string_view last_coding;
    for (const auto& [name, value] : in) {
        head_bytes += name.size() + value.size() + 4;
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); }))
            return Refusal{400, "bad_request", "A header field name is not a token (white space before the colon?)."};
        if (has_control(value, true)) return Refusal{400, "bad_request", "A header value contains a control character."};
        if (http::iequals(name, "Host")) {
            ++hosts;
        } else if (http::iequals(name, "Content-Length")) {
            const std::string_view digits = trim(value);
            if (digits.empty() || digits.size() > 18 ||
                !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return Refusal{400, "bad_request", "Content-Length must be digits only."};
            if (content_length && *content_length != digits)
                return Refusal{400, "bad_request", "The request has differing Content-Length values."};
            content_length = digits;
        } else if (http::iequals(name, "Transfer-Encoding")) {
            ++transfer_encodings;
            const std::string_view text(value);
            const auto comma = text.rfind(',');
            last_coding = trim(comma == std::string_view::npos ? text : text.substr(comma + 1));
        }
    }
    if (head_bytes > options.max_header_bytes)
        return Refusal{431, "header_fields_too_large", "The request head is too large."};
    if (http11 && hosts != 1)
        return Refusal{400, "bad_request", "An HTTP/1.1 request needs exactly one Host header."};
    if (hosts > 1) return Refusal{400, "bad_request", "The request has more than one Host header."};
    if (transfer_encodings > 0) {
        if (!http11) return Refusal{400, "bad_request", "Transfer-Encoding is not allowed in an HTTP/1.0 request."};
        if (content_length)
            return Refusal{400, "bad_request", "A request must not have both Content-Length and Transfer-Encoding."};
        if (!http::iequals(last_coding, "chunked"))
            return Refusal{400, "bad_request", "The last transfer coding of a request must be chunked."};
        // Poco frames a body as chunked only for one field whose whole value is "chunked".
        if (transfer_encodings > 1 || !in.getChunkedTransferEncoding())
            return Refusal{501, "not_implemented", "This server's Poco engine reads only Transfer-Encoding: chunked."};
    }
    return std::nullopt;
}

// Sends the answer before returning; false when the client did not take it within
// send_timeout (or went away). Not sendBuffer(): it leaves the answer in a buffered stream
// that Poco flushes when the response object is destroyed, swallowing a send timeout, and
// then serves the next request on the stuck connection.
bool send_now(const http::Response& response, const Poco::Net::HTTPServerRequest& in,
              Poco::Net::HTTPServerResponse& out) {
    // 1xx, 204 and 304 have no body, and neither a Content-Length (RFC 9110 §8.6).
    const bool no_body = response.status < 200 || response.status == 204 || response.status == 304;
    if (no_body)
        out.erase(Poco::Net::HTTPMessage::CONTENT_LENGTH);
    else
        out.setContentLength64(static_cast<Poco::Int64>(response.body.size()));
    std::ostream& stream = out.send();  // for HEAD, the head alone
    if (!no_body && in.getMethod() != Poco::Net::HTTPRequest::HTTP_HEAD)
        stream.write(response.body.data(), static_cast<std::streamsize>(response.body.size()));
    stream.flush();  // Poco's stream errors become badbit
    return stream.good();
}

// Stops sending and reads what the client still sends, up to 2 s, before the close.
void linger(Poco::Net::StreamSocket& socket) {
    socket.shutdownSend();
    socket.setReceiveTimeout(Poco::Timespan(0, 200 * 1000));
    char discard[4096];
    for (int reads = 0; reads < 10 && socket.receiveBytes(discard, sizeof discard) > 0; ++reads) {
    }
}

// The connection ends after a refusal: send it with Connection: close, stop sending, and read
// what the client still sends for a moment (a lingering close), so that closing with unread
// input does not reset the connection before the client read the answer.
void refuse(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out, const Refusal& refusal) {
    http::Request bare;
    const std::string_view target = origin_form(in.getURI());
    bare.path.assign(target.substr(0, target.find('?')));
    bare.request_id = http::choose_request_id(nullptr);
    http::Response response;
    http::set_problem(response, bare, refusal.status, refusal.code, refusal.detail);
    response.set_header(http::request_id_header, bare.request_id);
    out.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    out.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status),
                           std::string(http::reason_phrase(response.status)));
    for (const auto& [name, value] : response.headers) out.set(name, value);
    out.setKeepAlive(false);
    try {
        send_now(response, in, out);
        linger(static_cast<Poco::Net::HTTPServerRequestImpl&>(in).socket());
    } catch (const Poco::Exception&) {
        // The client went away or stayed silent: either way the connection ends now.
    }
}

http::Request translate(Poco::Net::HTTPServerRequest& in) {
    http::Request out;
    out.method = in.getMethod();
    const std::string_view uri = origin_form(in.getURI());
    const auto question = uri.find('?');
    out.path.assign(uri.substr(0, question));
    if (question != std::string_view::npos) out.query.assign(uri.substr(question + 1));
    out.version = in.getVersion();
    out.remote_address = format_address(in.clientAddress());
    out.headers.reserve(in.size());
    for (const auto& [name, value] : in) out.headers.emplace_back(name, value);
    return out;
}

// Reads the body into `request`; a refusal when it cannot be read whole. Poco's streams
// swallow socket errors into badbit and keep the exception in the session.
std::optional<Refusal> read_body(Poco::Net::HTTPServerRequest& in, http::Request& request, const Options& options) {
    const bool chunked = in.getChunkedTransferEncoding();
    if (!chunked && !in.hasContentLength()) return std::nullopt;
    const std::uint64_t length = chunked ? 0 : static_cast<std::uint64_t>(in.getContentLength64());
    if (!chunked && length > options.max_body_bytes) {
        request.body_too_large = true;  // never read: the connection closes after the 413
        return std::nullopt;
    }
    auto& impl = static_cast<Poco::Net::HTTPServerRequestImpl&>(in);
    impl.socket().setReceiveTimeout(Poco::Timespan(options.body_timeout.count() * 1000));
    std::istream& stream = in.stream();
    std::string body;
    if (!chunked) body.reserve(static_cast<std::size_t>(length));
    char buffer[8192];
    while (stream.read(buffer, sizeof buffer), stream.gcount() > 0) {
        body.append(buffer, static_cast<std::size_t>(stream.gcount()));
        if (body.size() > options.max_body_bytes) {
            request.body_too_large = true;
            return std::nullopt;
        }
    }
    impl.socket().setReceiveTimeout(Poco::Timespan(options.header_timeout.count() * 1000));  // the next head
    if (const Poco::Exception* failed = impl.session().networkException();
        failed && dynamic_cast<const Poco::TimeoutException*>(failed))
        return Refusal{408, "request_timeout", "The request body did not arrive in time."};
    if (stream.bad() || (!chunked && body.size() < length))
        return Refusal{400, "bad_request", "The request body ended before its Content-Length."};
    request.body = std::move(body);
    return std::nullopt;
}

void send(const http::Response& response, Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out,
          bool draining) {
    out.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    out.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status),
                           std::string(http::reason_phrase(response.status)));
    for (const auto& [name, value] : response.headers) {
        // Framing is the engine's (as in the event engine): a handler's own Content-Length,
        // Transfer-Encoding or Connection would contradict what is sent.
        if (http::iequals(name, "Content-Length") || http::iequals(name, "Transfer-Encoding") ||
            http::iequals(name, "Connection"))
            continue;
        out.add(name, value);
    }
    if (response.close_connection || draining) out.setKeepAlive(false);
    if (send_now(response, in, out)) return;
    // A client that stopped reading (send_timeout) or left: end the connection, do not read
    // its next request.
    out.setKeepAlive(false);
    try {
        static_cast<Poco::Net::HTTPServerRequestImpl&>(in).socket().shutdown();
    } catch (const Poco::Exception&) {
    }
}

// Answers a head that check_head refused; nothing of the request reaches the host.
class RefusalHandler final : public Poco::Net::HTTPRequestHandler {
public:
    explicit RefusalHandler(Refusal refusal) : refusal_(refusal) {}
    void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
        refuse(in, out, refusal_);
    }

private:
    Refusal refusal_;
};

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
public:
    RequestHandler(const Handler& handler, const Options& options, const std::atomic<bool>& draining)
        : handler_(handler), options_(options), draining_(draining) {}

    void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
        auto& socket = static_cast<Poco::Net::HTTPServerRequestImpl&>(in).socket();
        // Poco sets no send timeout on server sockets: a client that stops reading would hold
        // this thread (and the drain) for ever.
        socket.setSendTimeout(Poco::Timespan(options_.send_timeout.count() * 1000));
        BlockingExchange exchange(false);
        exchange.request = translate(in);
        if (auto refusal = read_body(in, exchange.request, options_)) return refuse(in, out, *refusal);
        // An unread body would be parsed as the next request: close instead.
        if (exchange.request.body_too_large) exchange.response.close_connection = true;
        handler_(exchange);
        exchange.wait();
        if (out.sent()) return;
        if (!exchange.request.body_too_large) return send(exchange.response, in, out, draining_.load());
        // The body was never read: send the 413, stop sending, and read for a moment before
        // Poco closes, so that the unread body does not reset the connection under the answer.
        out.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
        out.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(exchange.response.status),
                               std::string(http::reason_phrase(exchange.response.status)));
        for (const auto& [name, value] : exchange.response.headers) out.add(name, value);
        out.setKeepAlive(false);
        try {
            send_now(exchange.response, in, out);
            linger(socket);
        } catch (const Poco::Exception&) {
        }
    }

private:
    const Handler& handler_;
    const Options& options_;
    const std::atomic<bool>& draining_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    HandlerFactory(Handler handler, const Options& options, const std::atomic<bool>& draining)
        : handler_(std::move(handler)), options_(options), draining_(draining) {}
    // Runs after Poco read the head and before it sends 100 Continue, which it sends only
    // while the response status is still 200: a refusal sets its status first.
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest& in) override {
        if (auto refusal = check_head(in, options_)) {
            in.response().setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(refusal->status));
            return new RefusalHandler(*refusal);
        }
        if (in.hasContentLength() && !in.getChunkedTransferEncoding() &&
            static_cast<std::uint64_t>(in.getContentLength64()) > options_.max_body_bytes)
            in.response().setStatus(Poco::Net::HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE);  // no 100 Continue
        return new RequestHandler(handler_, options_, draining_);
    }

private:
    Handler handler_;
    const Options& options_;
    const std::atomic<bool>& draining_;
};

class PocoEngine final : public Engine {
public:
    PocoEngine(const Options& options, Handler handler, Poco::Net::ServerSocket socket)
        : options_(options), pool_("trellis-" + options.name, 4, options.max_threads, 60), port_(socket.address().port()) {
        auto* params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(options.max_threads);
        params->setMaxQueued(options.max_queued);
        params->setKeepAlive(true);
        params->setKeepAliveTimeout(Poco::Timespan(options.keep_alive_timeout.count() * 1000));
        params->setMaxKeepAliveRequests(options.max_keep_alive_requests);
        // Poco's one timeout: the wait for a new connection's first byte and each read of a
        // head (per read, not per head: see the top of this file).
        params->setTimeout(Poco::Timespan(options.header_timeout.count() * 1000));
        server_ = std::make_unique<Poco::Net::HTTPServer>(
            new HandlerFactory(std::move(handler), options_, draining_), pool_, socket, params);
    }

    ~PocoEngine() override { stop(); }

    void start() override { server_->start(); }

    // Poco's stop() ends the accept loop but leaves the socket listening (the kernel would
    // keep queueing connections nobody serves), so shut it down to refuse them. Then
    // stopAll(false) shuts idle keep-alive connections down at once and waits for each
    // request in flight before closing its connection.
    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        draining_ = true;
        server_->stop();
        // Shut the listening socket down (Poco still owns and later closes the descriptor):
        // on Linux it leaves LISTEN, so new connections are refused instead of queued.
        ::shutdown(server_->socket().impl()->sockfd(), SHUT_RDWR);
        server_->stopAll(false);
        pool_.joinAll();
    }

    std::uint16_t port() const override { return port_; }
    Stats stats() const override {
        return {static_cast<std::int64_t>(server_->currentConnections() + server_->queuedConnections()),
                static_cast<std::uint64_t>(server_->totalConnections()),
                static_cast<std::uint64_t>(server_->refusedConnections())};
    }

private:
    Options options_;                    // before server_: its handlers read it
    std::atomic<bool> draining_{false};  // responses from now on carry Connection: close
    Poco::ThreadPool pool_;              // before server_: the server is destroyed first
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    std::uint16_t port_;
    bool stopped_ = false;
};

}  // namespace

tl::expected<std::unique_ptr<Engine>, std::string> make_poco_engine(const Options& options, Handler handler) {
    try {
        Poco::Net::SocketAddress address(options.host, options.port);
        Poco::Net::ServerSocket socket;
        // SO_REUSEADDR for quick restarts, but never SO_REUSEPORT (Poco's default with
        // reuseAddress): a second Trellis on the same port must fail, not share it.
        socket.bind(address, true, false);
        socket.listen(1024);
        return std::make_unique<PocoEngine>(options, std::move(handler), socket);
    } catch (const Poco::Exception& e) {
        return tl::unexpected("cannot listen on " + options.host + ":" + std::to_string(options.port) + " (" +
                              options.name + " listener): " + e.displayText());
    }
}

}  // namespace trellis::engine
