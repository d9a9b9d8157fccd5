// Fuzzes the event engine's HTTP/1.1 connection state machine (engine/http1.hpp), driven the
// way Connection::drive() in engine/event_engine.cpp drives it: one read in flight at a time
// into read_space(), received() or end_of_input() when it completes; one gathered write of
// output() in flight, sent() with what the socket took; the handler answers each dispatched
// request either at once (responded() inside the loop) or later (responded() then drive());
// the deadline sweep calls expired(); drain() as the engine's begin_drain() does. No input is
// fed while a request is with the handler, as in the engine.
//
// Input: request bytes, optionally followed by "\xffSCHED\xff" and schedule bytes. The
// schedule decides read sizes (often one byte), partial writes, when the handler answers,
// what it answers, deadlines and drain; once it runs out, a generator seeded from the whole
// input carries on. The client side parses every byte sent and aborts on a malformed or out
// of order response. Each input is also run a second time with the largest reads, whole
// writes and immediate answers: requests must not depend on how the bytes were split.
#include <utility>  // before Boost 1.74's Asio with g++ 12 in C++20

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/http1.hpp"
#include "http/message.hpp"

namespace {

using namespace std::chrono_literals;
using trellis::engine::http1::BufferPool;
using trellis::engine::http1::Clock;
using trellis::engine::http1::Session;
using Step = Session::Step;
namespace http = trellis::http;

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "fuzz_session: invariant violated: %s\n", what);
    std::abort();
}

#define CHECK(condition, what)                 \
    do {                                       \
        if (!(condition)) violated(what);      \
    } while (false)

// FUZZ_SESSION_TRACE=1 prints every step and event (to reproduce a finding by hand).
const bool tracing = std::getenv("FUZZ_SESSION_TRACE") != nullptr;
#define TRACE(...)                                            \
    do {                                                      \
        if (tracing) std::fprintf(stderr, __VA_ARGS__);       \
    } while (false)

constexpr std::string_view schedule_marker = "\xffSCHED\xff";

// Small limits, so that the fuzzer reaches them.
const trellis::engine::Options& options() {
    static const trellis::engine::Options value = [] {
        trellis::engine::Options o;
        o.max_header_bytes = 1024;
        o.max_headers = 16;
        o.max_uri_bytes = 256;
        o.max_body_bytes = 4096;
        o.max_keep_alive_requests = 16;
        o.keep_alive_timeout = 5s;
        o.header_timeout = 10s;
        o.body_timeout = 20s;
        o.send_timeout = 30s;
        return o;
    }();
    return value;
}

// Schedule bytes, then a splitmix64 stream.
class Schedule {
public:
    Schedule(std::string_view bytes, std::uint64_t seed) : bytes_(bytes), state_(seed) {}

    std::uint8_t byte() {
        if (pos_ < bytes_.size()) return static_cast<std::uint8_t>(bytes_[pos_++]);
        state_ += 0x9e3779b97f4a7c15ULL;
        std::uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return static_cast<std::uint8_t>((z ^ (z >> 31)) >> 56);
    }
    // 1..limit (limit > 0): often 1, often small, sometimes all.
    std::size_t amount(std::size_t limit) {
        const std::uint8_t kind = byte();
        if (kind < 40 || limit == 1) return 1;
        if (kind < 110) return 1 + byte() % std::min<std::size_t>(limit, 24);
        if (kind < 190) return 1 + ((std::size_t{byte()} << 8) | byte()) % limit;
        return limit;
    }

private:
    std::string_view bytes_;
    std::size_t pos_ = 0;
    std::uint64_t state_;
};

// What the handler saw: must not depend on how the input was split.
struct Seen {
    std::string method, path, query, version;
    http::Fields headers;
    std::string body;
    bool body_too_large = false;
    bool operator==(const Seen&) const = default;
};

// What the handler answered, for the client to check the response against.
struct Answer {
    bool head = false;
    bool expect_continue = false;
    bool close = false;
    int status = 200;
    std::string body;
};

bool is_tchar(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= '0' && u <= '9') return true;
    if ((u | 0x20) >= 'a' && (u | 0x20) <= 'z') return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool digits_only(std::string_view s) {
    return !s.empty() && s.size() <= 18 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::size_t to_size(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) n = n * 10 + static_cast<std::size_t>(c - '0');
    return n;
}

// The client: parses the bytes the session sent, response by response.
class Client {
public:
    explicit Client(const std::vector<Answer>& answers) : answers_(answers) {}

    std::string bytes;
    bool closed = false;             // a response with Connection: close arrived
    std::uint64_t final_with_seq = 0;  // responses the handler wrote

    void parse() {
        while (pos_ < bytes.size()) {
            CHECK(!closed, "bytes after a response with Connection: close");
            const std::string_view rest = std::string_view(bytes).substr(pos_);
            const auto end = rest.find("\r\n\r\n");
            if (end == std::string_view::npos) {
                CHECK(rest.size() < 64 * 1024, "a response head without an end");
                return;
            }
            const std::string_view head = rest.substr(0, end + 2);  // lines with their CRLF
            // Status line.
            auto eol = head.find("\r\n");
            const std::string_view status_line = head.substr(0, eol);
            CHECK(status_line.size() > 13 && status_line.substr(0, 9) == "HTTP/1.1 ", "status line version");
            CHECK(digits_only(status_line.substr(9, 3)) && status_line[12] == ' ', "status code");
            const int status = static_cast<int>(to_size(status_line.substr(9, 3)));
            CHECK(status >= 100 && status <= 599, "status code range");
            CHECK(status_line.substr(13) == http::reason_phrase(status), "reason phrase");
            // Fields.
            int content_lengths = 0, dates = 0, seqs = 0;
            std::size_t content_length = 0;
            std::uint64_t seq = 0;
            bool connection_close = false;
            std::size_t at = eol + 2;
            while (at < head.size()) {
                const auto line_end = head.find("\r\n", at);
                const std::string_view line = head.substr(at, line_end - at);
                at = line_end + 2;
                const auto colon = line.find(':');
                CHECK(colon != std::string_view::npos && colon > 0, "a response field without a name");
                const std::string_view name = line.substr(0, colon);
                CHECK(std::all_of(name.begin(), name.end(), is_tchar), "a response field name");
                CHECK(line.size() > colon + 1 && line[colon + 1] == ' ', "a response field separator");
                const std::string_view value = line.substr(colon + 2);
                for (char c : value)
                    CHECK(static_cast<unsigned char>(c) >= 0x20 || c == '\t', "a control byte in a field value");
                if (http::iequals(name, "Content-Length")) {
                    ++content_lengths;
                    CHECK(digits_only(value), "Content-Length is not digits");
                    content_length = to_size(value);
                } else if (http::iequals(name, "Date")) {
                    ++dates;
                } else if (http::iequals(name, "X-Seq")) {
                    ++seqs;
                    CHECK(digits_only(value), "X-Seq");
                    seq = to_size(value);
                } else if (http::iequals(name, "Transfer-Encoding")) {
                    violated("a response with Transfer-Encoding");
                } else if (http::iequals(name, "Connection")) {
                    CHECK(value == "close" || value == "keep-alive", "Connection value");
                    connection_close = connection_close || value == "close";
                }
            }
            const bool no_body = status < 200 || status == 204 || status == 304;
            if (status < 200) {
                // 100 Continue, only before the final response to a request that asked for it.
                CHECK(status == 100 && head.size() == status_line.size() + 2, "an interim response");
                CHECK(!continue_pending_, "two 100 Continue for one request");
                continue_pending_ = true;
                pos_ += end + 4;
                continue;
            }
            CHECK(dates == 1, "a final response without exactly one Date");
            CHECK(seqs <= 1, "two X-Seq");
            CHECK(no_body ? content_lengths == 0 : content_lengths == 1,
                  "Content-Length missing, repeated, or sent with a status that has no body");
            std::size_t body_bytes = no_body ? 0 : content_length;
            const Answer* answer = nullptr;
            if (seqs == 1) {
                CHECK(seq == final_with_seq + 1, "responses out of request order");
                CHECK(seq <= answers_.size(), "a response to a request never dispatched");
                answer = &answers_[seq - 1];
                CHECK(status == answer->status, "the status the handler set");
                if (answer->head) body_bytes = 0;
                if (!no_body) CHECK(content_length == answer->body.size(), "Content-Length is not the body's length");
                if (answer->close) CHECK(connection_close, "the handler's close_connection was ignored");
                if (continue_pending_) CHECK(answer->expect_continue, "100 Continue to a request without Expect");
            } else {
                // The session's own error answer (400, 408, 413, 414, 431, 505): it ends the connection.
                CHECK(status >= 400, "an engine answer that is not an error");
                CHECK(connection_close, "an engine error answer without Connection: close");
            }
            if (rest.size() < end + 4 + body_bytes) return;  // the body is still on its way
            const std::string_view body = rest.substr(end + 4, body_bytes);
            if (answer != nullptr) {
                CHECK(answer->head || no_body || body == answer->body, "the body is not the handler's");
                ++final_with_seq;
            }
            continue_pending_ = false;
            closed = connection_close;
            pos_ += end + 4 + body_bytes;
        }
    }

    bool complete() const { return pos_ == bytes.size(); }

private:
    const std::vector<Answer>& answers_;
    std::size_t pos_ = 0;
    bool continue_pending_ = false;
};

// The lower bound of a request head's size in bytes, from what the parser handed over.
std::size_t head_size_at_least(const http::Request& request) {
    std::size_t size = request.method.size() + 1 + request.path.size() + 1 + 8 + 2 + 2;
    if (!request.query.empty()) size += 1 + request.query.size();
    for (const auto& [name, value] : request.headers) size += name.size() + 1 + value.size() + 2;
    return size;
}

class Run {
public:
    // reference: the largest reads, whole writes, immediate answers, no deadlines, no drain.
    Run(std::string_view payload, Schedule& schedule, bool reference)
        : payload_(payload), schedule_(schedule), reference_(reference) {}

    void go() {
        drive();
        std::size_t events = 0;
        while (!closed_) {
            ++events;
            // Every event makes progress: input read, output sent, an answer, a state change.
            CHECK(events <= 64 + 4 * (payload_.size() + client_.bytes.size()) + 16 * answers_.size(),
                  "the connection does not terminate");
            CHECK(client_.bytes.size() <= (answers_.size() + 2) * 2 * (16 * 1024),
                  "more output than the requests explain");
            if (handler_pending_) {
                CHECK(!reading_ && !writing_, "socket I/O while the handler has the request");
                CHECK(session_.deadline() == Clock::time_point::max(), "a deadline while the handler runs");
                if (!reference_ && !drained_ && schedule_.byte() < 8) {
                    drain();
                    continue;
                }
                now_ += std::chrono::milliseconds(reference_ ? 0 : schedule_.byte() * 4);
                handler_pending_ = false;
                session_.responded(now_);
                drive();
                continue;
            }
            CHECK(reading_ || writing_, "the connection waits for nothing");
            const std::uint8_t pick = reference_ ? 255 : schedule_.byte();
            if (pick < 6 && session_.deadline() != Clock::time_point::max()) {
                // The sweep, up to 200 ms late.
                now_ = std::max(now_, session_.deadline()) + std::chrono::milliseconds(schedule_.byte() % 200);
                expired_ = true;
                cut_ = cut_ || writing_;  // the send timeout closes in the middle of a response
                TRACE("  expired\n");
                session_.expired(now_);
                drive();
            } else if (pick < 9 && !drained_) {
                drain();
            } else if (writing_ && (!reading_ || (pick & 1))) {
                complete_write(!reference_ && pick == 9);
            } else {
                complete_read();
            }
        }
        client_.parse();
        TRACE("%s output:\n%s\n", reference_ ? "ref" : "run", client_.bytes.c_str());
        // Every request dispatched was answered, completely, unless the connection was cut.
        if (!cut_) {
            CHECK(client_.complete(), "a response cut short");
            CHECK(client_.final_with_seq == answers_.size(), "a dispatched request without its response");
        }
    }

    const std::vector<Seen>& seen() const { return seen_; }
    // Nothing but the bytes decided the outcome: no deadline, drain, write error or handler close.
    bool natural() const { return !expired_ && !drained_ && !cut_ && !handler_closed_; }

private:
    void drive() {
        while (!closed_) {
            const Step step = session_.next(now_);
            TRACE("%s step %d\n", reference_ ? "ref" : "run", static_cast<int>(step));
            switch (step) {
                case Step::read: return read();
                case Step::dispatch:
                    if (!dispatch()) return;
                    break;
                case Step::write: return write();
                case Step::linger:
                    shut_down_ = true;
                    return read();
                case Step::close:
                    close();
                    CHECK(session_.next(now_) == Step::close, "a closed session came back");
                    return;
            }
        }
    }

    void close() {
        closed_ = true;
        reading_ = writing_ = false;
    }

    void drain() {
        // Engine::begin_drain().
        drained_ = true;
        TRACE("  drain\n");
        session_.drain();
        if (session_.idle()) close();
    }

    void read() {
        if (reading_) return;
        auto [data, size] = session_.read_space();
        if (size == 0) return close();
        CHECK(data != nullptr, "read_space without memory");
        reading_ = true;
        read_data_ = data;
        read_size_ = size;
    }

    void complete_read() {
        reading_ = false;
        if (payload_pos_ == payload_.size()) {
            eof_ = true;
            cut_ = cut_ || writing_;  // as in the engine, the end of input closes during a write
            TRACE("  end of input\n");
            session_.end_of_input();
        } else {
            const std::size_t limit = std::min(read_size_, payload_.size() - payload_pos_);
            const std::size_t bytes = reference_ ? limit : schedule_.amount(limit);
            // The memory the read was given must still be there (ASan checks).
            std::memcpy(read_data_, payload_.data() + payload_pos_, bytes);
            payload_pos_ += bytes;
            TRACE("  received %zu of %zu\n", bytes, read_size_);
            session_.received(bytes, now_);
        }
        drive();
    }

    void write() {
        if (writing_) return;
        write_views_ = session_.output();
        CHECK(write_views_[0].size() + write_views_[1].size() > 0, "a write step with nothing to write");
        writing_ = true;
    }

    void complete_write(bool fail) {
        writing_ = false;
        if (fail) {
            TRACE("  write failed\n");
            cut_ = true;
            session_.end_of_input();
            return drive();
        }
        const std::size_t total = write_views_[0].size() + write_views_[1].size();
        const std::size_t bytes = reference_ ? total : schedule_.amount(total);
        // The views must still be valid now that the socket takes them (ASan checks).
        const std::size_t from_head = std::min(bytes, write_views_[0].size());
        client_.bytes.append(write_views_[0].substr(0, from_head));
        client_.bytes.append(write_views_[1].substr(0, bytes - from_head));
        TRACE("  sent %zu of %zu\n", bytes, total);
        session_.sent(bytes, now_);
        client_.parse();
        drive();
    }

    // The handler: checks what it was handed, then numbers its answer in X-Seq.
    bool dispatch() {
        CHECK(!eof_, "a dispatch after the end of input");
        CHECK(!client_.closed, "a dispatch after a response with Connection: close");
        CHECK(!shut_down_, "a dispatch after the sending side was shut down");
        const auto& o = options();
        const http::Request& request = request_;
        CHECK(request.body.size() <= o.max_body_bytes, "a body longer than max_body_bytes");
        CHECK(!request.body_too_large || request.body.empty(), "body_too_large with a body");
        CHECK(request.method.size() > 0, "a request without a method");
        CHECK(request.version == "HTTP/1.1" || request.version == "HTTP/1.0", "version");
        CHECK(request.path.size() + request.query.size() <= o.max_uri_bytes, "a target beyond max_uri_bytes");
        CHECK(request.headers.size() <= static_cast<std::size_t>(o.max_headers), "more fields than max_headers");
        CHECK(head_size_at_least(request) <= o.max_header_bytes, "a head beyond max_header_bytes");
        // The body is whole: as long as its Content-Length, none without framing.
        const std::string* length = request.header("Content-Length");
        const std::string* coding = request.header("Transfer-Encoding");
        if (!request.body_too_large) {
            if (coding != nullptr) {
                CHECK(length == nullptr, "Content-Length with Transfer-Encoding");
            } else if (length != nullptr) {
                CHECK(digits_only(*length) && to_size(*length) == request.body.size(),
                      "a body that is not as long as its Content-Length");
            } else {
                CHECK(request.body.empty(), "a body without framing");
            }
        }
        if (request.version == "HTTP/1.1") {
            int hosts = 0;
            for (const auto& field : request.headers) hosts += http::iequals(field.first, "Host") ? 1 : 0;
            CHECK(hosts == 1 || request.body_too_large, "an HTTP/1.1 request without exactly one Host");
        }

        seen_.push_back(Seen{request.method, request.path, request.query, request.version, request.headers,
                             request.body, request.body_too_large});
        Answer answer;
        answer.head = request.method == "HEAD";
        const std::string* expect = request.header("Expect");
        answer.expect_continue = expect != nullptr && request.version == "HTTP/1.1";
        bool later = false;
        if (reference_) {
            answer.body = "ok";
        } else {
            const std::uint8_t how = schedule_.byte();
            later = how & 1;
            static constexpr std::array<int, 8> statuses{200, 201, 204, 304, 404, 500, 503, 200};
            answer.status = statuses[(how >> 1) & 7];
            answer.close = (how >> 4) == 0;
            handler_closed_ = handler_closed_ || answer.close;
            const std::uint8_t pick = schedule_.byte();
            const std::size_t body_size = pick < 128 ? pick % 32 : pick < 250 ? pick * 8u : 9000;
            answer.body.reserve(body_size);
            for (std::size_t i = 0; i < body_size; ++i) answer.body += static_cast<char>('a' + (i + seen_.size()) % 26);
        }
        if (request.body_too_large) {
            answer.status = 413;
            answer.close = true;
        }
        response_.status = answer.status;
        response_.body = answer.status == 204 || answer.status == 304 ? std::string() : answer.body;
        answer.body = response_.body;
        response_.close_connection = answer.close;
        response_.set_header("X-Seq", std::to_string(seen_.size()));
        if (!reference_ && (seen_.size() & 3) == 2) {
            // Framing fields of the handler's own are the engine's to drop.
            response_.add_header("Content-Length", "999");
            response_.add_header("Transfer-Encoding", "chunked");
            response_.add_header("Connection", "keep-alive");
        }
        TRACE("  dispatched %s %s -> %d%s%s\n", request.method.c_str(), request.path.c_str(), answer.status,
              answer.close ? " close" : "", later ? " later" : "");
        answers_.push_back(std::move(answer));
        if (later) {
            handler_pending_ = true;
            return false;
        }
        session_.responded(now_);
        return true;
    }

    std::string_view payload_;
    Schedule& schedule_;
    const bool reference_;

    // The exchange and the loop's buffer pool outlive the session.
    BufferPool pool_;
    http::Request request_;
    http::Response response_;
    Clock::time_point now_ = Clock::now();
    Session session_{options(), pool_, request_, response_, "192.0.2.7:40000", now_};

    std::vector<Seen> seen_;
    std::vector<Answer> answers_;
    Client client_{answers_};
    std::size_t payload_pos_ = 0;
    char* read_data_ = nullptr;
    std::size_t read_size_ = 0;
    std::array<std::string_view, 2> write_views_{};
    bool reading_ = false, writing_ = false, handler_pending_ = false;
    bool closed_ = false, shut_down_ = false, eof_ = false;
    bool expired_ = false, drained_ = false, cut_ = false, handler_closed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto marker = input.find(schedule_marker);
    const std::string_view payload = input.substr(0, marker);
    const std::string_view schedule_bytes =
        marker == std::string_view::npos ? std::string_view() : input.substr(marker + schedule_marker.size());
    std::uint64_t seed = 0xcbf29ce484222325ULL;  // FNV-1a of the whole input
    for (char c : input) seed = (seed ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;

    Schedule schedule(schedule_bytes, seed);
    Run fuzzed(payload, schedule, false);
    fuzzed.go();

    Schedule unused({}, 0);
    Run reference(payload, unused, true);
    reference.go();

    // However the bytes were split, the handler saw the same requests.
    const auto& a = fuzzed.seen();
    const auto& b = reference.seen();
    CHECK(a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin()),
          "the requests dispatched depend on how the input was split");
    if (fuzzed.natural()) {
        CHECK(a.size() == b.size(), "a request dispatched or not depending on how the input was split");
        // Which error answer a malformed request gets may depend on the split: Beast finds some
        // errors only once the head ended (a 431 where the whole head gives 400; no answer when
        // the input ends first). Every one of them closes the connection, which the check above
        // and the client's checks cover.
    }
    return 0;
}
