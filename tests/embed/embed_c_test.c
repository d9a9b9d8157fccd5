/* trellis/embed.h from C89: start a host with the hello plugin, send requests, read the
 * responses, see a configuration error, and release everything. Exits non-zero on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <trellis/embed.h>

static int failures = 0;

#define EXPECT(condition)                                                       \
    do {                                                                        \
        if (!(condition)) {                                                     \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #condition); \
            ++failures;                                                         \
        }                                                                       \
    } while (0)

static const char* header_value(const trellis_embed_response* response, const char* wanted) {
    size_t i;
    size_t count = trellis_embed_response_header_count(response);
    for (i = 0; i < count; ++i) {
        const char* name;
        const char* value;
        size_t name_len;
        size_t value_len;
        trellis_embed_response_header(response, i, &name, &name_len, &value, &value_len);
        if (name_len == strlen(wanted) && strncmp(name, wanted, name_len) == 0) return value;
    }
    return NULL;
}

int main(void) {
    static const char yaml[] =
        "plugins:\n"
        "  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n"
        "  hello:\n"
        "    config: {greeting: Bonjour}\n";
    static const char bad_yaml[] = "server:\n  listen: nowhere\n";
    static const char headers[] = "Accept: application/json\r\nX-Request-ID: c-test-request-0001\r\n";
    char* error = NULL;
    trellis_embed_host* host;
    trellis_embed_response* response;
    const char* body;
    size_t body_len = 0;

    EXPECT(trellis_embed_api_version() == TRELLIS_EMBED_API_VERSION);

    host = trellis_embed_create(bad_yaml, sizeof bad_yaml - 1, NULL, &error);
    EXPECT(host == NULL);
    EXPECT(error != NULL && strstr(error, "config:2:") != NULL);
    if (error) fprintf(stderr, "expected error: %s\n", error);
    trellis_embed_free_string(error);
    error = NULL;

    host = trellis_embed_create(yaml, sizeof yaml - 1, ".", &error);
    if (!host) {
        fprintf(stderr, "trellis_embed_create failed: %s\n", error ? error : "(no message)");
        trellis_embed_free_string(error);
        return 1;
    }
    EXPECT(strlen(trellis_embed_data_dir(host)) > 0);

    response = trellis_embed_request(host, "GET", "/hello/C", headers, sizeof headers - 1, NULL, 0, &error);
    EXPECT(response != NULL);
    if (response) {
        const char* request_id = header_value(response, "X-Request-ID");
        EXPECT(trellis_embed_response_status(response) == 200);
        body = trellis_embed_response_body(response, &body_len);
        EXPECT(body_len == strlen(body));
        EXPECT(strcmp(body, "{\"greeting\":\"Bonjour, C!\",\"name\":\"C\"}") == 0);
        EXPECT(request_id != NULL && strcmp(request_id, "c-test-request-0001") == 0);
        trellis_embed_response_free(response);
    }

    response = trellis_embed_request(host, "GET", "/nowhere", NULL, 0, NULL, 0, &error);
    EXPECT(response != NULL);
    if (response) {
        const char* type = header_value(response, "Content-Type");
        EXPECT(trellis_embed_response_status(response) == 404);
        EXPECT(type != NULL && strcmp(type, "application/problem+json") == 0);
        trellis_embed_response_free(response);
    }

    response = trellis_embed_request(host, "GET", "no-slash", NULL, 0, NULL, 0, &error);
    EXPECT(response == NULL);
    EXPECT(error != NULL && strstr(error, "must be a path") != NULL);
    trellis_embed_free_string(error);
    error = NULL;

    EXPECT(trellis_embed_request(NULL, "GET", "/", NULL, 0, NULL, 0, NULL) == NULL);
    trellis_embed_response_free(NULL);
    trellis_embed_destroy(host);
    trellis_embed_destroy(NULL);

    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("embed.h from C: all checks passed\n");
    return failures ? 1 : 0;
}
