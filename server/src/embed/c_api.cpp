// trellis/embed.h: the C functions libtrellis.so.1 exports. Each one catches everything, so no
// exception crosses into the caller, and turns failures into NULL/0 plus an error string.
// The declarations get default visibility; everything else in the library is hidden.
#pragma GCC visibility push(default)
#include <trellis/embed.h>
#pragma GCC visibility pop

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "embed/embedded_host.hpp"

struct trellis_embed_host {
    std::unique_ptr<trellis::embed::EmbeddedHost> host;
};

struct trellis_embed_response {
    trellis::http::Response response;
};

namespace {

void set_error(char** error, std::string_view message) noexcept {
    if (!error) return;
    auto* copy = static_cast<char*>(std::malloc(message.size() + 1));
    if (!copy) {
        *error = nullptr;
        return;
    }
    std::memcpy(copy, message.data(), message.size());
    copy[message.size()] = '\0';
    *error = copy;
}

void set_error(char** error, const std::exception& e) noexcept {
    if (dynamic_cast<const std::bad_alloc*>(&e)) return set_error(error, "out of memory");
    set_error(error, std::string_view(e.what()));
}

bool is_token(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        const bool ok = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                        std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

}  // namespace

unsigned trellis_embed_api_version(void) { return TRELLIS_EMBED_API_VERSION; }

trellis_embed_host* trellis_embed_create(const char* yaml, size_t yaml_len, const char* base_dir,
                                                              char** error) {
    try {
        if (!yaml && yaml_len > 0) {
            set_error(error, "trellis_embed_create: yaml is NULL but yaml_len is not 0");
            return nullptr;
        }
        auto made = trellis::embed::EmbeddedHost::create(std::string(yaml ? yaml : "", yaml_len),
                                                         base_dir ? base_dir : "");
        if (!made) {
            set_error(error, made.error());
            return nullptr;
        }
        return new trellis_embed_host{std::move(*made)};
    } catch (const std::exception& e) {
        set_error(error, e);
    } catch (...) {
        set_error(error, "trellis_embed_create failed with an unknown exception");
    }
    return nullptr;
}

void trellis_embed_destroy(trellis_embed_host* host) {
    try {
        delete host;
    } catch (...) {
        // Destructors of the host do not throw; nothing may cross the boundary regardless.
    }
}

int trellis_embed_reload(trellis_embed_host* host, const char* yaml, size_t yaml_len,
                                              char** error) {
    try {
        if (!host || (!yaml && yaml_len > 0)) {
            set_error(error, !host ? "trellis_embed_reload: host is NULL"
                                   : "trellis_embed_reload: yaml is NULL but yaml_len is not 0");
            return 0;
        }
        auto reloaded = host->host->reload(std::string(yaml ? yaml : "", yaml_len));
        if (!reloaded) {
            set_error(error, reloaded.error());
            return 0;
        }
        return 1;
    } catch (const std::exception& e) {
        set_error(error, e);
    } catch (...) {
        set_error(error, "trellis_embed_reload failed with an unknown exception");
    }
    return 0;
}

const char* trellis_embed_data_dir(const trellis_embed_host* host) {
    return host ? host->host->data_dir().c_str() : "";
}

trellis_embed_response* trellis_embed_request(trellis_embed_host* host, const char* method,
                                                                   const char* target, const char* headers,
                                                                   size_t headers_len, const char* body,
                                                                   size_t body_len, char** error) {
    try {
        if (!host || !method || !target) {
            set_error(error, std::string("trellis_embed_request: ") +
                                 (!host ? "host" : !method ? "method" : "target") + " is NULL");
            return nullptr;
        }
        if ((!headers && headers_len > 0) || (!body && body_len > 0)) {
            set_error(error, "trellis_embed_request: headers or body is NULL with a length that is not 0");
            return nullptr;
        }
        trellis::http::Request request;
        request.method = method;
        if (!is_token(request.method)) {
            set_error(error, "trellis_embed_request: method '" + request.method + "' is not an HTTP token");
            return nullptr;
        }
        const std::string_view uri(target);
        if (uri.empty() || uri.front() != '/') {
            set_error(error, "trellis_embed_request: target '" + std::string(uri) +
                                 "' must be a path starting with '/' (origin form: /path?query)");
            return nullptr;
        }
        for (const char c : uri)
            if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
                set_error(error, "trellis_embed_request: target '" + std::string(uri) +
                                     "' contains white space or a control character; percent-encode it");
                return nullptr;
            }
        const auto question = uri.find('?');
        request.path = uri.substr(0, question);
        if (question != std::string_view::npos) request.query = uri.substr(question + 1);
        auto fields = trellis::embed::parse_header_lines(std::string_view(headers ? headers : "", headers_len));
        if (!fields) {
            set_error(error, "trellis_embed_request: " + fields.error());
            return nullptr;
        }
        request.headers = std::move(*fields);
        request.body.assign(body ? body : "", body_len);
        request.remote_address = "127.0.0.1";
        return new trellis_embed_response{host->host->request(std::move(request))};
    } catch (const std::exception& e) {
        set_error(error, e);
    } catch (...) {
        set_error(error, "trellis_embed_request failed with an unknown exception");
    }
    return nullptr;
}

int trellis_embed_response_status(const trellis_embed_response* response) {
    return response ? response->response.status : 0;
}

size_t trellis_embed_response_header_count(const trellis_embed_response* response) {
    return response ? response->response.headers.size() : 0;
}

void trellis_embed_response_header(const trellis_embed_response* response, size_t index,
                                                        const char** name, size_t* name_len, const char** value,
                                                        size_t* value_len) {
    const bool found = response && index < response->response.headers.size();
    const std::string* n = found ? &response->response.headers[index].first : nullptr;
    const std::string* v = found ? &response->response.headers[index].second : nullptr;
    if (name) *name = n ? n->c_str() : "";
    if (name_len) *name_len = n ? n->size() : 0;
    if (value) *value = v ? v->c_str() : "";
    if (value_len) *value_len = v ? v->size() : 0;
}

const char* trellis_embed_response_body(const trellis_embed_response* response, size_t* len) {
    if (len) *len = response ? response->response.body.size() : 0;
    return response ? response->response.body.c_str() : "";
}

void trellis_embed_response_free(trellis_embed_response* response) { delete response; }

void trellis_embed_free_string(char* text) { std::free(text); }
