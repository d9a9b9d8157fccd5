// The baseline for bench/hello_vs_poco.sh: a plain Poco HTTPServer with Trellis's default
// thread settings, answering every request with the bytes Trellis's hello route sends.
#include <csignal>
#include <iostream>
#include <string>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

namespace {

const std::string body = R"({"greeting":"Hello, world!","name":"world"})";

class Handler final : public Poco::Net::HTTPRequestHandler {
public:
    void handleRequest(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) override {
        response.setContentType("application/json");
        response.set("X-Request-ID", "0123456789abcdef0123456789abcdef");
        response.sendBuffer(body.data(), body.size());
    }
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
        return new Handler;
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: plain_poco_server PORT\n";
        return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(std::stoi(argv[1]))), true, false);
    socket.listen(1024);
    Poco::ThreadPool pool("plain", 4, 512, 60);
    auto* params = new Poco::Net::HTTPServerParams;  // the same values as Trellis's defaults
    params->setMaxThreads(512);
    params->setMaxQueued(1024);
    params->setKeepAlive(true);
    params->setKeepAliveTimeout(Poco::Timespan(5, 0));
    params->setMaxKeepAliveRequests(1000);
    params->setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPServer server(new Factory, pool, socket, params);
    server.start();
    int signal = 0;
    sigwait(&signals, &signal);
    server.stopAll(false);
    pool.joinAll();
    return 0;
}
