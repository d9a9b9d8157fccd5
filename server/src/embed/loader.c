/* libtrellis.so.1: the embedding API of trellis/embed.h, forwarded to the host library
 * trellis/libtrellis-host.so beside it (c_api.cpp over the whole host, built with g++ and
 * libstdc++), which this file loads on first use: with RTLD_DEEPBIND when the program runs
 * on another C++ runtime.
 *
 * Why a loader: a test program built with clang++ -stdlib=libc++ has libc++abi in its global
 * scope before anything libtrellis brings, and libc++abi would then answer the host's C++
 * runtime calls (__dynamic_cast, the type_info vtables, __cxa_throw). libc++abi compares
 * type_info by address, so the host's dynamic_casts across its libraries fail (SOCI's rows
 * gave std::bad_cast). With RTLD_DEEPBIND the host library and everything it brings
 * (libstdc++, libgcc_s, SOCI, Poco ...) resolve their symbols among themselves first, and the
 * program keeps its own runtime. Only C types cross, so the two never meet.
 *
 * This file is C and needs libc alone: it adds no C++ runtime to the program. In a program on
 * libstdc++ the host library is loaded plainly (see other_cxx_runtime()). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The API gets default visibility; everything else here is hidden. */
#pragma GCC visibility push(default)
#include "trellis/embed.h"
#pragma GCC visibility pop

#define HOST_LIBRARY "trellis/libtrellis-host.so"
#define PATH_BYTES 4096

static struct {
    trellis_embed_host* (*create)(const char*, size_t, const char*, char**);
    void (*destroy)(trellis_embed_host*);
    int (*reload)(trellis_embed_host*, const char*, size_t, char**);
    const char* (*data_dir)(const trellis_embed_host*);
    trellis_embed_response* (*request)(trellis_embed_host*, const char*, const char*, const char*, size_t,
                                       const char*, size_t, char**);
    int (*response_status)(const trellis_embed_response*);
    size_t (*response_header_count)(const trellis_embed_response*);
    void (*response_header)(const trellis_embed_response*, size_t, const char**, size_t*, const char**, size_t*);
    const char* (*response_body)(const trellis_embed_response*, size_t*);
    void (*response_free)(trellis_embed_response*);
} host_api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char load_error[PATH_BYTES + 512];  /* room for a path and the words around it */

/* Resolves one function of the host library into *slot; 0 (with load_error set) if absent. */
static int resolve(void* library, const char* path, const char* name, void** slot) {
    *slot = dlsym(library, name);
    if (*slot) return 1;
    snprintf(load_error, sizeof load_error, "libtrellis.so.1: %s has no %s (a host library of another version?)",
             path, name);
    return 0;
}

/* 1 when the program's C++ runtime (the owner of __cxa_throw in the global scope) is not
 * libstdc++: libc++abi, typically. Then the host library needs RTLD_DEEPBIND. With libstdc++
 * (or none: a C program) it must not have it: a g++ program's copy-relocated libstdc++ data
 * (the locale facet ids) would exist twice, and std::use_facet would throw std::bad_cast.
 * AddressSanitizer intercepts __cxa_throw and refuses RTLD_DEEPBIND: never in a sanitized
 * process. */
static int other_cxx_runtime(void) {
    void* program = dlopen(NULL, RTLD_NOW);  /* searches the program's global scope */
    if (!program || dlsym(program, "__asan_init")) return 0;
    void* cxa_throw = dlsym(program, "__cxa_throw");
    Dl_info owner;
    if (!cxa_throw || !dladdr(cxa_throw, &owner) || !owner.dli_fname) return 0;
    return strstr(owner.dli_fname, "libstdc++") == NULL;
}

static void load_host_library(void) {
    Dl_info self;
    if (!dladdr(&loaded, &self) || !self.dli_fname) {  /* any address inside this library */
        snprintf(load_error, sizeof load_error, "libtrellis.so.1: cannot find its own file to locate %s",
                 HOST_LIBRARY);
        return;
    }
    char path[PATH_BYTES];
    const char* slash = strrchr(self.dli_fname, '/');
    const int dir_len = slash ? (int)(slash - self.dli_fname) : 1;
    const char* dir = slash ? self.dli_fname : ".";
    if (snprintf(path, sizeof path, "%.*s/%s", dir_len, dir, HOST_LIBRARY) >= (int)sizeof path) {
        snprintf(load_error, sizeof load_error, "libtrellis.so.1: the path of %s is too long", HOST_LIBRARY);
        return;
    }
    const int flags = RTLD_NOW | RTLD_LOCAL | (other_cxx_runtime() ? RTLD_DEEPBIND : 0);
    void* library = dlopen(path, flags);
    if (!library) {
        snprintf(load_error, sizeof load_error, "libtrellis.so.1: cannot load the host library: %s", dlerror());
        return;
    }
    /* The host library stays loaded for the life of the process (its plugins may too). */
    if (resolve(library, path, "trellis_embed_create", (void**)&host_api.create) &&
        resolve(library, path, "trellis_embed_destroy", (void**)&host_api.destroy) &&
        resolve(library, path, "trellis_embed_reload", (void**)&host_api.reload) &&
        resolve(library, path, "trellis_embed_data_dir", (void**)&host_api.data_dir) &&
        resolve(library, path, "trellis_embed_request", (void**)&host_api.request) &&
        resolve(library, path, "trellis_embed_response_status", (void**)&host_api.response_status) &&
        resolve(library, path, "trellis_embed_response_header_count", (void**)&host_api.response_header_count) &&
        resolve(library, path, "trellis_embed_response_header", (void**)&host_api.response_header) &&
        resolve(library, path, "trellis_embed_response_body", (void**)&host_api.response_body) &&
        resolve(library, path, "trellis_embed_response_free", (void**)&host_api.response_free))
        loaded = 1;
}

/* 1 once the host library is loaded; otherwise 0, with the reason in *error (when given). */
static int ready(char** error) {
    pthread_once(&load_once, load_host_library);
    if (loaded) return 1;
    if (error) {
        *error = malloc(strlen(load_error) + 1);
        if (*error) strcpy(*error, load_error);
    }
    return 0;
}

/* Objects exist only when the host library loaded; without it they cannot have been made. */
static int have_host(void) {
    pthread_once(&load_once, load_host_library);
    return loaded;
}

unsigned trellis_embed_api_version(void) { return TRELLIS_EMBED_API_VERSION; }

trellis_embed_host* trellis_embed_create(const char* yaml, size_t yaml_len, const char* base_dir, char** error) {
    return ready(error) ? host_api.create(yaml, yaml_len, base_dir, error) : NULL;
}

void trellis_embed_destroy(trellis_embed_host* host) {
    if (host && have_host()) host_api.destroy(host);
}

int trellis_embed_reload(trellis_embed_host* host, const char* yaml, size_t yaml_len, char** error) {
    return ready(error) ? host_api.reload(host, yaml, yaml_len, error) : 0;
}

const char* trellis_embed_data_dir(const trellis_embed_host* host) {
    return have_host() ? host_api.data_dir(host) : NULL;
}

trellis_embed_response* trellis_embed_request(trellis_embed_host* host, const char* method, const char* target,
                                              const char* headers, size_t headers_len, const char* body,
                                              size_t body_len, char** error) {
    return ready(error) ? host_api.request(host, method, target, headers, headers_len, body, body_len, error) : NULL;
}

int trellis_embed_response_status(const trellis_embed_response* response) {
    return have_host() ? host_api.response_status(response) : 0;
}

size_t trellis_embed_response_header_count(const trellis_embed_response* response) {
    return have_host() ? host_api.response_header_count(response) : 0;
}

void trellis_embed_response_header(const trellis_embed_response* response, size_t index, const char** name,
                                   size_t* name_len, const char** value, size_t* value_len) {
    if (have_host()) host_api.response_header(response, index, name, name_len, value, value_len);
}

const char* trellis_embed_response_body(const trellis_embed_response* response, size_t* len) {
    if (have_host()) return host_api.response_body(response, len);
    if (len) *len = 0;
    return NULL;
}

void trellis_embed_response_free(trellis_embed_response* response) {
    if (response && have_host()) host_api.response_free(response);
}

/* Both the host library's messages and this file's own are malloc'd: free() releases either. */
void trellis_embed_free_string(char* text) { free(text); }
