// One HTTP/1.1 server connection as a state machine without I/O: bytes in, requests out to
// the handler, response bytes out. The event engine drives it from a socket; the fuzz target
// and the unit tests drive it directly. Strict RFC 9112 parsing through a subclass of
// Boost.Beast's basic_parser (http1.cpp): malformed framing is answered 400 (or 413, 414,
// 431, 505) and the connection closes after a lingering read, so nothing is smuggled.
#pragma once

#include <utility>  // before Boost 1.74's Asio with g++ 12 in C++20

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.hpp"

namespace trellis::engine::http1 {

using Clock = std::chrono::steady_clock;

// Read buffers of connections between requests: one pool per event loop (one thread), so an
// idle connection holds no buffer.
class BufferPool {
public:
    static constexpr std::size_t block_size = 4096;
    std::unique_ptr<char[]> take();
    void give(std::unique_ptr<char[]> block);  // keeps up to max_free blocks

private:
    static constexpr std::size_t max_free = 1024;
    std::vector<std::unique_ptr<char[]>> free_;
};

// "Tue, 15 Nov 1994 08:12:31 GMT" for now, formatted once a second per thread.
std::string_view http_date();

class Session {
public:
    enum class Step {
        read,      // read into read_space(), then received()
        dispatch,  // hand request/response to the handler; responded() when it completed
        write,     // send output(), then sent()
        linger,    // shut the sending side down, read and discard until end of input or the deadline
        close      // close the socket
    };

    // request/response belong to the connection's exchange and outlive the session.
    Session(const Options& options, BufferPool& buffers, http::Request& request, http::Response& response,
            std::string remote_address, Clock::time_point now);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // What to do next; parses buffered input as far as it goes. Not called while a request
    // is with the handler.
    Step next(Clock::time_point now);

    std::pair<char*, std::size_t> read_space();
    void received(std::size_t bytes, Clock::time_point now);  // bytes > 0
    void end_of_input();                                      // the peer closed, or a read failed

    void responded(Clock::time_point now);  // the handler completed the exchange

    // The response bytes not yet sent: head, then body.
    std::array<std::string_view, 2> output() const;
    void sent(std::size_t bytes, Clock::time_point now);

    // When the current state times out (Clock::time_point::max() while the handler runs).
    Clock::time_point deadline() const { return deadline_; }
    // The deadline passed: answers 408 when a request had started, otherwise closes.
    void expired(Clock::time_point now);
    // Draining: every response from now on carries Connection: close.
    void drain() { draining_ = true; }
    // Between requests with nothing buffered: drain() may close it at once.
    bool idle() const;
    bool holds_buffer() const { return static_cast<bool>(buffer_); }
    std::uint64_t requests_served() const { return served_; }

private:
    enum class State { head, body, handler, writing, lingering, closed };
    class Parser;

    Step parse(Clock::time_point now);
    Step fail(int status, std::string_view code, std::string_view detail);
    void serialise(bool interim);
    void start_next_request(Clock::time_point now);
    void release_buffer_if_empty();
    bool ensure_space();

    const Options& options_;
    BufferPool& buffers_;
    http::Request& request_;
    http::Response& response_;
    std::string remote_address_;

    State state_ = State::head;
    std::unique_ptr<Parser> parser_;
    std::unique_ptr<char[]> buffer_;  // begin_..end_ is unparsed input
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    // Where bytes land while no buffer is held (an idle connection), copied into one after.
    std::array<char, 512> landing_{};
    bool landing_used_ = false;

    Clock::time_point deadline_;
    bool head_started_ = false;  // some bytes of the current request arrived
    bool draining_ = false;
    bool close_after_ = false;  // the response being written ends the connection
    bool linger_after_ = false;  // ... after a lingering read (an error answer)
    bool interim_ = false;       // writing 100 Continue
    bool continue_sent_ = false;
    std::size_t head_bytes_ = 0;  // of the current request head, consumed by the parser so far
    bool head_request_ = false;
    std::uint64_t served_ = 0;

    std::string head_out_;
    std::string_view body_out_;
    std::size_t out_sent_ = 0;  // bytes of head_out_ + body_out_ already sent
};

}  // namespace trellis::engine::http1
