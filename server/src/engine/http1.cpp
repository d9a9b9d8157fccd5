// The HTTP/1.1 session: parsing (Beast's basic_parser plus the checks it leaves to us),
// limits, deadlines, keep-alive, pipelining, 100-continue and response serialisation.
#include "engine/http1.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "http/problem.hpp"
#include "http/request_id.hpp"

namespace trellis::engine::http1 {
namespace beast = boost::beast;

std::unique_ptr<char[]> BufferPool::take() {
    if (free_.empty()) return std::make_unique_for_overwrite<char[]>(block_size);
    auto block = std::move(free_.back());
    free_.pop_back();
    return block;
}

void BufferPool::give(std::unique_ptr<char[]> block) {
    if (free_.size() < max_free) free_.push_back(std::move(block));
}

std::string_view http_date() {
    thread_local std::time_t formatted_second = -1;
    thread_local char text[sizeof "Tue, 15 Nov 1994 08:12:31 GMT"];
    const std::time_t now = std::time(nullptr);
    if (now != formatted_second) {
        std::tm utc{};
        gmtime_r(&now, &utc);
        std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
        formatted_second = now;
    }
    return {text, sizeof text - 1};
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 9112 §2.2 and §5: every line ends in CRLF (no bare CR or LF), no line of the head
// starts with white space (obs-fold, or white space before the first field), and no control
// character other than HTAB appears anywhere in the head. Beast accepts obs-fold and joins
// it; we refuse it, as a server that does not fold may.
std::string_view check_head_bytes(std::string_view head) {
    for (std::size_t i = 0; i < head.size(); ++i) {
        const auto c = static_cast<unsigned char>(head[i]);
        if (c == '\r') {
            if (i + 1 >= head.size() || head[i + 1] != '\n') return "a bare CR in the request head";
            ++i;
            if (i + 1 < head.size() && (head[i + 1] == ' ' || head[i + 1] == '\t'))
                return "a header line starting with white space (obs-fold)";
            continue;
        }
        if (c == '\n') return "a line ending without CR";
        if ((c < 0x20 && c != '\t') || c == 0x7f) return "a control character in the request head";
    }
    return {};
}

// Whether the request line at the front of `input` ends in a well-formed HTTP-version
// ("HTTP/" DIGIT "." DIGIT, RFC 9112 §2.3) other than 1.0 and 1.1.
bool is_other_http_version(std::string_view input) {
    const auto line_end = input.find("\r\n");
    if (line_end == std::string_view::npos || line_end < 9) return false;
    const std::string_view version = input.substr(line_end - 8, 8);
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    return input[line_end - 9] == ' ' && version.substr(0, 5) == "HTTP/" && digit(version[5]) && version[6] == '.' &&
           digit(version[7]) && version != "HTTP/1.0" && version != "HTTP/1.1";
}

}  // namespace

// Beast's parser, filling the exchange's request. Beast already refuses malformed request
// lines and field names, a Content-Length that is not digits, differing Content-Length
// values, Content-Length with Transfer-Encoding, and malformed chunks; the rest is here.
class Session::Parser final : public beast::http::basic_parser<true> {
public:
    Parser(const Options& options, http::Request& request) : options_(options), request_(request) {
        header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options.max_header_bytes, UINT32_MAX)));
        body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
        eager(false);  // stop after the head, so that limits and 100-continue come first
    }

    // Set by a check of ours before it fails the parse.
    int status = 0;
    std::string_view code;
    std::string_view detail;
    bool expect_continue = false;
    int version = 11;

private:
    const Options& options_;
    http::Request& request_;
    int host_fields_ = 0;
    int fields_ = 0;
    std::string_view transfer_encoding_last_;  // the last coding of the last Transfer-Encoding
    bool has_transfer_encoding_ = false;

    void refuse(beast::error_code& ec, int refuse_status, std::string_view refuse_code, std::string_view why) {
        status = refuse_status;
        code = refuse_code;
        detail = why;
        ec = beast::http::error::bad_field;
    }

    void on_request_impl(beast::http::verb, beast::string_view method, beast::string_view target, int http_version,
                         beast::error_code& ec) override {
        version = http_version;
        if (http_version != 10 && http_version != 11)
            return refuse(ec, 505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are served.");
        if (target.size() > options_.max_uri_bytes)
            return refuse(ec, 414, "uri_too_long", "The request target is too long.");
        for (char c : target) {
            const auto byte = static_cast<unsigned char>(c);
            if (byte <= 0x20 || byte == 0x7f)
                return refuse(ec, 400, "bad_request", "The request target contains a control character.");
        }
        std::string_view path(target.data(), target.size());
        // Absolute form (RFC 9112 §3.2.2): the path starts after the authority.
        if (path.size() > 7 && (http::iequals(path.substr(0, 7), "http://") ||
                                (path.size() > 8 && http::iequals(path.substr(0, 8), "https://")))) {
            const auto authority = path.find("://") + 3;
            const auto slash = path.find_first_of("/?", authority);
            if (slash == authority) return refuse(ec, 400, "bad_request", "The request target has no authority.");
            path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
            if (path.front() == '?') {
                request_.path = "/";
                request_.query.assign(path.substr(1));
                path = {};
            }
        } else if (path.front() != '/' && !(path == "*" && method == "OPTIONS")) {
            return refuse(ec, 400, "bad_request", "The request target must be a path.");
        }
        if (!path.empty()) {
            const auto question = path.find('?');
            request_.path.assign(path.substr(0, question));
            if (question != std::string_view::npos) request_.query.assign(path.substr(question + 1));
        }
        request_.method.assign(method.data(), method.size());
        request_.version = http_version == 11 ? "HTTP/1.1" : "HTTP/1.0";
    }

    void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
        ec = beast::http::error::bad_version;  // never: this parser reads requests
    }

    void on_field_impl(beast::http::field name, beast::string_view name_string, beast::string_view value,
                       beast::error_code& ec) override {
        if (++fields_ > options_.max_headers)
            return refuse(ec, 431, "header_fields_too_large", "The request has too many header fields.");
        for (char c : value) {
            const auto byte = static_cast<unsigned char>(c);
            if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
                return refuse(ec, 400, "bad_request", "A header value contains a control character.");
        }
        // A trailer field of a chunked body: checked and counted, never merged into the header
        // fields (RFC 9110 §6.5.1), where it would add a Host, a Content-Length or an identity.
        if (is_header_done()) return;
        const std::string_view text(value.data(), value.size());
        switch (name) {
            case beast::http::field::host: ++host_fields_; break;
            case beast::http::field::transfer_encoding: {
                has_transfer_encoding_ = true;
                auto comma = text.rfind(',');
                transfer_encoding_last_ = trim(comma == std::string_view::npos ? text : text.substr(comma + 1));
                break;
            }
            case beast::http::field::expect:
                if (http::iequals(trim(text), "100-continue")) expect_continue = true;
                break;
            default: break;
        }
        request_.headers.emplace_back(std::string(name_string.data(), name_string.size()), std::string(text));
    }

    void on_header_impl(beast::error_code& ec) override {
        if (version == 11 && host_fields_ != 1)
            return refuse(ec, 400, "bad_request", "An HTTP/1.1 request needs exactly one Host header.");
        if (host_fields_ > 1) return refuse(ec, 400, "bad_request", "The request has more than one Host header.");
        if (has_transfer_encoding_) {
            if (version == 10)
                return refuse(ec, 400, "bad_request", "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
            if (!http::iequals(transfer_encoding_last_, "chunked"))
                return refuse(ec, 400, "bad_request", "The last transfer coding of a request must be chunked.");
        }
    }

    void on_body_init_impl(const boost::optional<std::uint64_t>& length, beast::error_code&) override {
        if (length) request_.body.reserve(static_cast<std::size_t>(*length));
    }

    std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
        request_.body.append(body.data(), body.size());
        return body.size();
    }

    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}

    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
        request_.body.append(body.data(), body.size());
        return body.size();
    }

    void on_finish_impl(beast::error_code&) override {}
};

Session::Session(const Options& options, BufferPool& buffers, http::Request& request, http::Response& response,
                 std::string remote_address, Clock::time_point now)
    : options_(options),
      buffers_(buffers),
      request_(request),
      response_(response),
      remote_address_(std::move(remote_address)),
      // A new connection has header_timeout to send its first request head.
      deadline_(now + options.header_timeout) {
    request_.remote_address = remote_address_;
}

Session::~Session() {
    if (buffer_ && capacity_ == BufferPool::block_size) buffers_.give(std::move(buffer_));
}

bool Session::idle() const {
    return (state_ == State::head && !head_started_ && begin_ == end_) || state_ == State::closed;
}

void Session::release_buffer_if_empty() {
    if (!buffer_ || begin_ != end_) return;
    if (capacity_ == BufferPool::block_size) buffers_.give(std::move(buffer_));
    buffer_.reset();
    capacity_ = begin_ = end_ = 0;
}

// Room to read into, growing the buffer up to what one request head may take.
bool Session::ensure_space() {
    if (!buffer_) {
        buffer_ = buffers_.take();
        capacity_ = BufferPool::block_size;
        begin_ = end_ = 0;
    }
    if (end_ < capacity_) return true;
    if (begin_ > 0) {
        std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        return true;
    }
    // Full of one unparsed head (or chunk line): grow, up to the head limit and a little.
    const std::size_t limit = options_.max_header_bytes + BufferPool::block_size;
    if (capacity_ >= limit) return false;
    const std::size_t grown = std::min(limit, capacity_ * 2);
    auto bigger = std::make_unique_for_overwrite<char[]>(grown);
    std::memcpy(bigger.get(), buffer_.get(), end_);
    if (capacity_ == BufferPool::block_size) buffers_.give(std::move(buffer_));
    buffer_ = std::move(bigger);
    capacity_ = grown;
    return true;
}

std::pair<char*, std::size_t> Session::read_space() {
    if (state_ == State::lingering) return {landing_.data(), landing_.size()};
    // Nothing buffered: land the bytes in the session itself and take a buffer only once
    // they came, so that a connection waiting for its next request holds none.
    if (!buffer_) {
        landing_used_ = true;
        return {landing_.data(), landing_.size()};
    }
    landing_used_ = false;
    if (!ensure_space()) return {landing_.data(), 0};
    return {buffer_.get() + end_, capacity_ - end_};
}

void Session::received(std::size_t bytes, Clock::time_point now) {
    if (state_ == State::lingering) return;  // discarded
    if (landing_used_) {
        landing_used_ = false;
        ensure_space();
        std::memcpy(buffer_.get() + end_, landing_.data(), bytes);
    }
    end_ += bytes;
    if (state_ == State::head && !head_started_) {
        head_started_ = true;
        // The first request's deadline runs from the accept; later ones from their first byte.
        if (served_ > 0) deadline_ = now + options_.header_timeout;
    }
}

void Session::end_of_input() {
    // A request that had not fully arrived is never dispatched.
    state_ = State::closed;
}

void Session::responded(Clock::time_point now) {
    serialise(false);
    state_ = State::writing;
    deadline_ = now + options_.send_timeout;
}

std::array<std::string_view, 2> Session::output() const {
    std::string_view head(head_out_);
    std::string_view body = body_out_;
    if (out_sent_ < head.size()) return {head.substr(out_sent_), body};
    return {body.substr(out_sent_ - head.size()), {}};
}

void Session::sent(std::size_t bytes, Clock::time_point now) {
    out_sent_ += bytes;
    deadline_ = now + options_.send_timeout;  // progress
    if (out_sent_ < head_out_.size() + body_out_.size()) return;
    head_out_.clear();
    body_out_ = {};
    out_sent_ = 0;
    if (interim_) {
        interim_ = false;
        state_ = State::body;
        deadline_ = now + options_.body_timeout;
        return;
    }
    if (linger_after_) {
        state_ = State::lingering;
        deadline_ = now + std::chrono::seconds(2);
        return;
    }
    if (close_after_) {
        state_ = State::closed;
        return;
    }
    start_next_request(now);
}

void Session::start_next_request(Clock::time_point now) {
    ++served_;
    parser_.reset();
    const bool secure = request_.secure;  // the connection's, kept for its every request
    request_ = http::Request{};
    response_ = http::Response{};
    request_.remote_address = remote_address_;
    request_.secure = secure;
    state_ = State::head;
    head_started_ = begin_ != end_;
    continue_sent_ = false;
    head_bytes_ = 0;
    deadline_ = now + (head_started_ ? options_.header_timeout : options_.keep_alive_timeout);
    release_buffer_if_empty();
}

void Session::expired(Clock::time_point) {
    switch (state_) {
        case State::head:
            if (head_started_) {
                fail(408, "request_timeout", "The request head did not arrive in time.");
                return;
            }
            state_ = State::closed;  // an idle keep-alive connection, or one that never spoke
            return;
        case State::body: fail(408, "request_timeout", "The request body did not arrive in time."); return;
        case State::handler: return;  // no deadline while the handler runs
        case State::writing:          // a client that stopped reading
        case State::lingering:
        case State::closed: state_ = State::closed; return;
    }
}

Session::Step Session::next(Clock::time_point now) {
    switch (state_) {
        case State::head:
        case State::body: return parse(now);
        case State::handler: return Step::dispatch;
        case State::writing: return Step::write;
        case State::lingering: return Step::linger;
        case State::closed: break;
    }
    return Step::close;
}

Session::Step Session::parse(Clock::time_point now) {
    if (state_ == State::head && draining_ && !head_started_ && begin_ == end_) {
        state_ = State::closed;
        return Step::close;
    }
    if (begin_ == end_) {
        if (state_ == State::head) release_buffer_if_empty();
        return Step::read;
    }
    if (!parser_) parser_ = std::make_unique<Parser>(options_, request_);
    while (true) {
        beast::error_code ec;
        const std::size_t used =
            parser_->put(boost::asio::const_buffer(buffer_.get() + begin_, end_ - begin_), ec);
        const char* consumed = buffer_.get() + begin_;
        begin_ += used;
        // Beast may take a head in pieces (the start line and whole fields first, the rest once
        // the head ended): every piece is checked, and the size limit counts all of them.
        if (state_ == State::head && used > 0 &&
            (!ec || ec == beast::http::error::need_more || ec == beast::http::error::body_limit)) {
            head_bytes_ += used;
            if (auto problem = check_head_bytes(std::string_view(consumed, used)); !problem.empty())
                return fail(400, "bad_request", std::string("The request head has ") + std::string(problem) + ".");
            if (head_bytes_ > options_.max_header_bytes)
                return fail(431, "header_fields_too_large", "The request head is too large.");
        }
        if (ec == beast::http::error::need_more) {
            if (state_ == State::head && head_bytes_ + (end_ - begin_) >= options_.max_header_bytes)
                return fail(431, "header_fields_too_large", "The request head is too large.");
            if (begin_ == end_ && state_ == State::body) begin_ = end_ = 0;
            if (end_ == capacity_ && !ensure_space())
                return fail(400, "bad_request", "A line of the request is too long.");
            return Step::read;
        }
        if (ec) {
            if (parser_->status) return fail(parser_->status, parser_->code, parser_->detail);
            // Beast 1.74 reports a version other than 1.0 and 1.1 as bad_version, the same
            // error as a malformed one, before on_request_impl runs: a well-formed other
            // version is a 505, not a 400.
            if (ec == beast::http::error::bad_version && state_ == State::head &&
                is_other_http_version(std::string_view(consumed, end_ - (begin_ - used))))
                return fail(505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are served.");
            if (ec == beast::http::error::header_limit)
                return fail(431, "header_fields_too_large", "The request head is too large.");
            if (ec == beast::http::error::body_limit) {
                // The host answers 413 (with its request id and access log line); the body is
                // never read, so the connection ends after a lingering read.
                request_.body_too_large = true;
                request_.body.clear();
                // Beast reports the limit as the head completes, before the head branch below.
                head_request_ = request_.method == "HEAD";
                close_after_ = true;
                linger_after_ = true;
                state_ = State::handler;
                deadline_ = Clock::time_point::max();
                return Step::dispatch;
            }
            return fail(400, "bad_request", "The request is not valid HTTP/1.1 (" + ec.message() + ").");
        }
        if (state_ == State::head) {
            if (!parser_->is_header_done()) return Step::read;
            state_ = State::body;
            deadline_ = now + options_.body_timeout;
            head_request_ = request_.method == "HEAD";
            parser_->eager(true);
            if (!parser_->is_done() && parser_->expect_continue && parser_->version == 11 && !continue_sent_) {
                // Only now, with the head within every limit, may the client send its body.
                continue_sent_ = true;
                if (begin_ == end_) {
                    serialise(true);
                    state_ = State::writing;
                    deadline_ = now + options_.send_timeout;
                    return Step::write;
                }
            }
        }
        if (parser_->is_done()) {
            state_ = State::handler;
            deadline_ = Clock::time_point::max();
            return Step::dispatch;
        }
        if (begin_ == end_) {
            begin_ = end_ = 0;
            return Step::read;
        }
    }
}

Session::Step Session::fail(int status, std::string_view code, std::string_view detail) {
    response_ = http::Response{};
    request_.request_id = http::choose_request_id(nullptr);
    http::set_problem(response_, request_, status, code, detail);
    response_.set_header(http::request_id_header, request_.request_id);
    close_after_ = true;
    linger_after_ = true;
    head_request_ = false;
    serialise(false);
    state_ = State::writing;
    deadline_ = Clock::now() + options_.send_timeout;
    return Step::write;
}

void Session::serialise(bool interim) {
    head_out_.clear();
    out_sent_ = 0;
    if (interim) {
        interim_ = true;
        head_out_ = "HTTP/1.1 100 Continue\r\n\r\n";
        body_out_ = {};
        return;
    }
    const int status = response_.status;
    const bool http10 = request_.version == "HTTP/1.0";
    bool keep_alive = !draining_ && !response_.close_connection && !close_after_;
    if (const std::string* connection = request_.header("Connection")) {
        // A list of options: close wins; HTTP/1.0 needs keep-alive to keep the connection.
        bool close = false, keep = false;
        std::string_view rest(*connection);
        while (!rest.empty()) {
            auto comma = rest.find(',');
            auto token = trim(rest.substr(0, comma));
            close = close || http::iequals(token, "close");
            keep = keep || http::iequals(token, "keep-alive");
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        if (close || (http10 && !keep)) keep_alive = false;
    } else if (http10) {
        keep_alive = false;
    }
    if (options_.max_keep_alive_requests > 0 &&
        served_ + 1 >= static_cast<std::uint64_t>(options_.max_keep_alive_requests))
        keep_alive = false;
    close_after_ = !keep_alive;

    const bool no_body = status < 200 || status == 204 || status == 304;
    head_out_.reserve(256 + response_.headers.size() * 48);
    head_out_ += "HTTP/1.1 ";
    char digits[16];
    head_out_.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
    head_out_ += ' ';
    head_out_ += http::reason_phrase(status);
    head_out_ += "\r\nDate: ";
    head_out_ += http_date();
    head_out_ += "\r\n";
    for (const auto& [name, value] : response_.headers) {
        // Framing is the engine's: a handler's own Content-Length, Transfer-Encoding or
        // Connection would contradict what is sent.
        if (http::iequals(name, "Content-Length") || http::iequals(name, "Transfer-Encoding") ||
            http::iequals(name, "Connection") || http::iequals(name, "Date"))
            continue;
        head_out_ += name;
        head_out_ += ": ";
        head_out_ += value;
        head_out_ += "\r\n";
    }
    if (!no_body) {
        head_out_ += "Content-Length: ";
        head_out_.append(digits, std::to_chars(digits, digits + sizeof digits, response_.body.size()).ptr);
        head_out_ += "\r\n";
    }
    if (!keep_alive)
        head_out_ += "Connection: close\r\n";
    else if (http10)
        head_out_ += "Connection: keep-alive\r\n";
    head_out_ += "\r\n";
    body_out_ = no_body || head_request_ ? std::string_view() : std::string_view(response_.body);
}

}  // namespace trellis::engine::http1
