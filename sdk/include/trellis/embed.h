/* The Trellis embedding API: the real host (plugin loader, router, host middleware, plugin
 * middleware chains, worker pool, database and migrations) inside another program, without
 * a network listener. libtrellis.so.1 (package libtrellis1) implements it; trellis/testing.hpp
 * wraps it for C++ tests. C89, so that a plugin built with any compiler and any C++ standard
 * library can drive the host built with Trellis's own toolchain.
 *
 * Every item is documented as: what it does, ownership, lifetime, threading.
 * No function lets an exception or a crash caused by bad input cross this boundary: failures
 * are reported through the return value and an error string.
 */
#ifndef TRELLIS_EMBED_H
#define TRELLIS_EMBED_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The version of this API, which trellis_embed_api_version() reports. It grows by one when
 * functions are added; existing functions keep their meaning within the library's SONAME. */
#define TRELLIS_EMBED_API_VERSION 1

/** An embedded host: one configuration, its loaded plugins, its database and worker pool.
 * Opaque; made by trellis_embed_create(), released by trellis_embed_destroy(). */
typedef struct trellis_embed_host trellis_embed_host;

/** One response: status, header fields and body. Opaque; made by trellis_embed_request(),
 * released by trellis_embed_response_free(). */
typedef struct trellis_embed_response trellis_embed_response;

/** The TRELLIS_EMBED_API_VERSION the library was built with. Compare it with the header's
 * to find out whether functions added later are there. Any thread. */
unsigned trellis_embed_api_version(void);

/** Starts a host from a configuration given as YAML text (the format of trellis.yaml).
 *
 * yaml, yaml_len: the text (need not be NUL-terminated). Error messages call it "config"
 *   ("config:3:5: key 'server.listn' is not known; did you mean 'listen'?"). TRELLIS_*
 *   environment variables and conf.d files are not applied: the text is the whole
 *   configuration.
 * base_dir: relative paths in the text (plugins.search_paths, server.data_dir, file log
 *   outputs) resolve against it; NULL or "" means the current directory.
 * error: on failure *error receives a message (free it with trellis_embed_free_string());
 *   may be NULL. Untouched on success.
 *
 * When the configuration sets no server.data_dir, a fresh temporary folder is used and
 * removed again by trellis_embed_destroy(), so the default database is a temporary SQLite
 * file (trellis_embed_data_dir() names the folder). Migrations run as at start-up. Every
 * enabled plugin is treated as required: one that fails to load, initialise or migrate fails
 * this call, with its name, file and reason in the message.
 *
 * Returns the host, or NULL with *error set on any failure (configuration errors carry their
 * line; a plugin error names the plugin, its file and why). The caller owns the host.
 * Logging follows the configuration's `logging:` section, which is process-wide: the host
 * created last decides it. Any thread. */
trellis_embed_host* trellis_embed_create(const char* yaml, size_t yaml_len, const char* base_dir, char** error);

/** Shuts the plugins down (in reverse dependency order), stops the worker pool, closes the
 * database and removes the temporary data folder, if one was made. Requests in flight must
 * have returned: call it when no other thread uses the host. NULL is ignored. */
void trellis_embed_destroy(trellis_embed_host* host);

/** Loads the plugins again from a new configuration, as `trellis serve` does on SIGHUP: the
 * new runtime replaces the old one only when it builds; otherwise the old one keeps serving.
 * yaml/yaml_len/error as for trellis_embed_create(); base_dir and the data folder stay those
 * of the host. Returns 1 when the new configuration is in force, 0 with *error set when not.
 * Safe while other threads send requests (they finish on the runtime they started on); one
 * reload at a time per host (a second caller waits). */
int trellis_embed_reload(trellis_embed_host* host, const char* yaml, size_t yaml_len, char** error);

/** The folder holding the host's files (server.data_dir: the SQLite database by default):
 * the temporary folder when the configuration set none. Owned by the host, valid until
 * trellis_embed_destroy(). Any thread. */
const char* trellis_embed_data_dir(const trellis_embed_host* host);

/** Sends one request through the host, as the public listener would hand it over: host
 * middleware (request id, trace context, limits, Host check, errors as
 * application/problem+json, compression, access log), routing, the plugin middleware chain
 * and the handler. A chain that may block runs on the host's worker pool, as under the event
 * engine; this call waits until the response is complete.
 *
 * method: e.g. "GET" (NUL-terminated). target: origin form, "/path?query" (NUL-terminated).
 * headers, headers_len: zero or more "Name: value" lines, each ended by "\r\n" (or "\n"; the
 *   last may have no end); NULL with 0 for none. Host defaults to "localhost"; a request with
 *   a body gets Content-Length unless given.
 * body, body_len: the request body; NULL with 0 for none. A body over server.max_body_bytes
 *   is answered 413 without reaching the plugin, as the engines do; a target over
 *   server.max_uri_bytes 414, and headers beyond server.max_headers or
 *   server.max_header_bytes 431.
 * error: as for trellis_embed_create().
 *
 * Returns the response (the caller owns it: trellis_embed_response_free()), or NULL with
 * *error set when the arguments do not form a request (NULL host, method or target; a method
 * that is not a token; a target that does not start with '/'; a header line without ':').
 * The response holds the fields the host and the plugins set; framing fields the engine
 * would add on the wire (Date, Content-Length, Connection) are not among them. For HEAD, and
 * for 1xx, 204 and 304 answers, the body is empty, as a client would receive it.
 * Thread-safe: many threads may send requests to one host at once. */
trellis_embed_response* trellis_embed_request(trellis_embed_host* host, const char* method, const char* target,
                                              const char* headers, size_t headers_len, const char* body,
                                              size_t body_len, char** error);

/** The HTTP status code. Any thread; the response must be live. */
int trellis_embed_response_status(const trellis_embed_response* response);

/** How many header fields the response has. */
size_t trellis_embed_response_header_count(const trellis_embed_response* response);

/** Header field number `index` (0-based, in the order the host set them; a name may repeat).
 * Each out pointer may be NULL. The strings are owned by the response, NUL-terminated and
 * valid until trellis_embed_response_free(). An index out of range gives empty strings. */
void trellis_embed_response_header(const trellis_embed_response* response, size_t index, const char** name,
                                   size_t* name_len, const char** value, size_t* value_len);

/** The body and, when len is not NULL, its length in bytes (it may contain NUL bytes; a NUL
 * follows the last byte). Owned by the response, valid until trellis_embed_response_free(). */
const char* trellis_embed_response_body(const trellis_embed_response* response, size_t* len);

/** Releases a response. NULL is ignored. */
void trellis_embed_response_free(trellis_embed_response* response);

/** Releases an error string set by this API. NULL is ignored. */
void trellis_embed_free_string(char* text);

#ifdef __cplusplus
}
#endif

#endif /* TRELLIS_EMBED_H */
