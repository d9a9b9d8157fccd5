/*
 * trellis/abi.h - the binary contract between the Trellis host and its plugins.
 *
 * This file is the only thing host and plugin share. It is C99 and compiles as C
 * and as C++; no C++ type and no exception ever crosses it. A plugin built with any
 * compiler and any C++ standard library against this header loads in every host of
 * the same ABI major whose minor is at least the plugin's.
 *
 * Rules of growth (checked by tests/abi: the header's hash is pinned per version):
 *   - a minor version only appends: new fields at the end of structs, new entries at
 *     the end of trellis_host_api, new constants; nothing is removed or reordered;
 *   - every struct starts with its own size (struct_size), so either side can tell
 *     which fields the other one knows about;
 *   - anything else is a new major.
 *
 * Every item is documented with one template:
 *   Called by:  who calls it (host or plugin)
 *   Threading:  from which threads, and what may run concurrently
 *   Ownership:  who owns each pointer and for how long it stays valid
 *   Returns:    what the return value means
 *
 * Naming: functions a plugin implements and the host calls are trellis_on_*_fn;
 * functions the host implements and the plugin calls live in trellis_host_api.
 */
#ifndef TRELLIS_ABI_H
#define TRELLIS_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ------------------------------------------------------------ */

/** ABI version of this header; independent of the Trellis product version. */
#define TRELLIS_ABI_MAJOR 1
#define TRELLIS_ABI_MINOR 4

/** Name of the one symbol every plugin exports (see trellis_plugin_entry_fn). */
#define TRELLIS_PLUGIN_ENTRY_SYMBOL "trellis_plugin_entry"

#if defined(_WIN32)
#define TRELLIS_PLUGIN_EXPORT __declspec(dllexport)
#else
#define TRELLIS_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* ---- Basic types --------------------------------------------------------- */

/**
 * A string as pointer + length; not NUL-terminated, may contain any bytes.
 * Ownership: always stated by the item that hands one out. An empty string is
 * {NULL, 0} or {p, 0}.
 */
typedef struct trellis_str {
    const char* data;
    size_t size;
} trellis_str;

/** Status codes returned across the boundary. 0 is success, anything else an error. */
typedef int32_t trellis_status;
#define TRELLIS_OK 0
#define TRELLIS_ERROR 1                  /* generic failure; a message was set where possible */
#define TRELLIS_ERROR_INVALID_ARGUMENT 2 /* a parameter was malformed (bad path template, ...) */
#define TRELLIS_ERROR_NOT_FOUND 3        /* the named thing does not exist */
#define TRELLIS_ERROR_CONFLICT 4         /* the thing exists already (route, middleware name) */
#define TRELLIS_ERROR_STATE 5            /* the call is not allowed now (e.g. register after init) */
#define TRELLIS_ERROR_NO_MEMORY 6
#define TRELLIS_ERROR_UNAVAILABLE 7 /* 1.1: a resource is unavailable for now (no free database
                                       connection in time, database unreachable). Returned by a
                                       handler, the host answers 503 problem+json with Retry-After. */

/** Log levels for trellis_host_api.log. */
typedef int32_t trellis_log_level;
#define TRELLIS_LOG_TRACE 0
#define TRELLIS_LOG_DEBUG 1
#define TRELLIS_LOG_INFO 2
#define TRELLIS_LOG_WARN 3
#define TRELLIS_LOG_ERROR 4
#define TRELLIS_LOG_CRITICAL 5

/** Name/value collections of a request, read with request_field_* in trellis_host_api. */
typedef int32_t trellis_field_kind;
#define TRELLIS_FIELD_HEADER 0     /* request headers; names compared case-insensitively */
#define TRELLIS_FIELD_QUERY 1      /* query parameters, percent-decoded, in order */
#define TRELLIS_FIELD_PATH_PARAM 2 /* values of {name} segments of the matched route, decoded */
#define TRELLIS_FIELD_ATTRIBUTE 3  /* per-request attributes; the host sets "trellis.request_id" */

/* ---- Database values (1.1) ------------------------------------------------ */

/** Type of a trellis_value. */
typedef int32_t trellis_value_type;
#define TRELLIS_VALUE_NULL 0
#define TRELLIS_VALUE_INT 1  /* int_value; booleans are 0 or 1 */
#define TRELLIS_VALUE_REAL 2 /* real_value */
#define TRELLIS_VALUE_TEXT 3 /* text (UTF-8; dates come as ISO 8601 text) */

/**
 * One value crossing the boundary: a bound parameter or a result column.
 * Ownership: parameters are read during db_execute only; values handed out by rows_value
 * are owned by the rows and valid until rows_free.
 */
typedef struct trellis_value {
    trellis_value_type type;
    int64_t int_value;
    double real_value;
    trellis_str text;
} trellis_value;

/** A named parameter: the SQL text refers to it as :name (name given without the colon). */
typedef struct trellis_param {
    trellis_str name;
    trellis_value value;
} trellis_param;

/* ---- Opaque handles ------------------------------------------------------ */

/**
 * The host's side of one plugin instance: its config, its logger, its registrations.
 * Ownership: host; valid from on_create until on_destroy returns.
 */
typedef struct trellis_host trellis_host;

/**
 * One HTTP request in flight. Ownership: host; valid only during the on_request or
 * on_middleware call it was passed to (including everything that call does).
 */
typedef struct trellis_request trellis_request;

/** The response being built for a request. Ownership and lifetime: as trellis_request. */
typedef struct trellis_response trellis_response;

/** The rest of a middleware chain; see trellis_host_api.next. Lifetime: as trellis_request. */
typedef struct trellis_next trellis_next;

/**
 * 1.1: one database connection leased from the host's pool, with its transaction state.
 * Ownership: host; valid from db_acquire until db_release. Used by one thread at a time.
 */
typedef struct trellis_db trellis_db;

/** 1.1: a query result, fully read. Ownership: host; valid from db_execute until rows_free. */
typedef struct trellis_rows trellis_rows;

/* ---- What the plugin implements (the host calls these) -------------------- */

/**
 * Handles one request on a registered route.
 * Called by:  host, after all middleware of the route ran and called next.
 * Threading:  from many request threads at once, for the same route and instance.
 *             The plugin synchronises its own shared state. By default on a worker
 *             thread, where blocking (the database) is fine; 1.2: a route flagged
 *             TRELLIS_ROUTE_NON_BLOCKING may run on an event-loop thread instead (see there).
 * Ownership:  user_data is the pointer given at registration; request and response
 *             are host-owned and valid only during the call.
 * Returns:    TRELLIS_OK when the response is complete (any HTTP status, 4xx included);
 *             anything else means the handler failed: the host answers 500
 *             problem+json and logs the message set with request_set_error.
 */
typedef trellis_status (*trellis_on_request_fn)(void* user_data, trellis_request* request, trellis_response* response);

/**
 * Runs one middleware for a request.
 * Called by:  host, in the order the configuration lists middleware.
 * Threading:  as trellis_on_request_fn; 1.2: TRELLIS_MIDDLEWARE_NON_BLOCKING as
 *             TRELLIS_ROUTE_NON_BLOCKING.
 * Ownership:  as trellis_on_request_fn; next is valid only during the call.
 * Returns:    as trellis_on_request_fn. To pass the request on, call host_api->next(next)
 *             (at most once) and usually return its result; to answer directly, fill the
 *             response and return TRELLIS_OK without calling next.
 */
typedef trellis_status (*trellis_on_middleware_fn)(void* user_data, trellis_request* request,
                                                   trellis_response* response, trellis_next* next);

struct trellis_host_api;

/**
 * Creates one plugin instance. A plugin keeps all per-instance state behind the
 * returned pointer, never in globals: during a reload two instances of the same
 * plugin live side by side in one loaded library.
 * Called by:  host, once per runtime that enables the plugin.
 * Threading:  host control thread; never concurrently with other lifecycle calls.
 * Ownership:  api is valid while the library stays loaded; host is valid until
 *             on_destroy returns. *instance_out is owned by the plugin and passed back
 *             to on_init, on_shutdown and on_destroy.
 * Returns:    TRELLIS_OK, or an error with a message set through api->set_error.
 */
typedef trellis_status (*trellis_on_create_fn)(const struct trellis_host_api* api, trellis_host* host,
                                               void** instance_out);

/**
 * Initialises an instance: read config, register routes and middleware. Registration
 * is only allowed during this call.
 * Called by:  host, after on_create, in dependency order (dependencies first).
 * Threading:  host control thread.
 * Returns:    TRELLIS_OK, or an error with a message set through api->set_error;
 *             on error the host calls on_destroy (not on_shutdown).
 */
typedef trellis_status (*trellis_on_init_fn)(void* instance);

/**
 * Stops an instance. No request is in flight for it any more and none will come.
 * Called by:  host, in reverse dependency order, once for every successful on_init.
 * Threading:  host control thread (not necessarily the one that called on_init).
 */
typedef void (*trellis_on_shutdown_fn)(void* instance);

/**
 * Frees an instance. After this call the host never uses the instance pointer again.
 * Called by:  host, once for every successful on_create.
 * Threading:  host control thread.
 */
typedef void (*trellis_on_destroy_fn)(void* instance);

/* ---- Registration records (plugin fills, host copies) ---------------------- */

/**
 * A route. The host copies every string during register_route; user_data must stay
 * valid until on_shutdown of the instance returns.
 * path is relative to the plugin's mount and may contain {name} segments, each matching
 * exactly one non-empty path segment ("/items/{id}").
 */
typedef struct trellis_route {
    uint32_t struct_size; /* sizeof(trellis_route) as the plugin saw it */
    trellis_str method;   /* "GET", "POST", ... upper case */
    trellis_str path;     /* "/", "/{name}", "/items/{id}/tags" */
    trellis_on_request_fn on_request;
    void* user_data;
    /* Optional metadata for generated API documentation; empty when absent. */
    trellis_str summary;
    trellis_str tags_json;            /* JSON array of strings */
    trellis_str request_schema_json;  /* JSON Schema of the request body (1.4: validated) */
    trellis_str response_schema_json; /* JSON Schema of the success response body */
    uint32_t flags;                   /* 1.2: TRELLIS_ROUTE_* bits; 0 when struct_size ends before it */
    /* 1.4: validation and security metadata; empty when absent. */
    trellis_str query_schema_json;    /* JSON Schema of the query parameters, as one object */
    trellis_str path_schema_json;     /* JSON Schema of the path parameters, as one object */
    trellis_str scopes_json;          /* JSON array of the scopes a caller needs */
    trellis_str security_json;        /* OpenAPI security requirements: [{"bearer": [scopes]}, ...] */
} trellis_route;

/*
 * 1.4: request validation. A route whose struct_size covers security_json (a plugin built
 * against 1.4 or later) has its schemas enforced by the host; older plugins' schemas stay
 * documentation. Schemas are JSON Schema draft-07. The host validates after the middleware
 * chain and before the handler, which never runs for a request that fails:
 *   - request_schema_json: the body, parsed as JSON (415 unless the Content-Type is JSON,
 *     400 invalid_json when it does not parse, 422 validation_failed when it does not match);
 *   - query_schema_json: an object of the query parameters (400 invalid_query);
 *   - path_schema_json: an object of the path parameters (404 not_found).
 * Query and path values are text; a property whose schema says "integer", "number" or
 * "boolean" receives the value converted when it converts, and "array" receives every value
 * of a repeated parameter. Failures are problem+json with errors[{field, message}], field a
 * JSON pointer, at most 20 listed.
 * security_json names the schemes "bearer" (Authorization: Bearer, a JWT) and "apiKey"
 * (X-API-Key or Authorization: ApiKey); scopes_json is what an auth middleware requires
 * (it reads them from the request attribute "trellis.route_scopes", and the matched route
 * from "trellis.route", e.g. "GET /notes/{id}"). Both appear in the OpenAPI document.
 * register_route returns TRELLIS_ERROR_INVALID_ARGUMENT for scopes or security requirements
 * of another shape or naming another scheme, and for a schema that is not JSON, not a
 * schema, or uses a keyword the host cannot check: anything outside draft-07's validation
 * and annotation keywords (except "x-" extensions), "patternProperties", "$ref" outside the
 * document, "format" other than date, time and date-time, and a "pattern" the host's
 * regular expression engine (RE2: no look-around, no back-references) cannot compile. The
 * reason is logged and given in the plugin's init error.
 */

/**
 * 1.2: trellis_route.flags bit: the handler never blocks, so the host may run it inline on
 * an event-loop thread, skipping the hop to a worker thread. It runs inline only when every
 * middleware in front of it is flagged TRELLIS_MIDDLEWARE_NON_BLOCKING too; otherwise, and
 * without the flag (the default), it runs on the worker pool.
 * Threading:  a non-blocking handler must not block: no database, no sleeping, no blocking
 *             I/O, no waiting on locks held for long. The host refuses a database call
 *             from an event-loop thread: db_acquire, db_begin, db_commit, db_rollback and
 *             db_execute return TRELLIS_ERROR_STATE without touching a connection, and
 *             returned from the handler that answers 500. Everything else of
 *             trellis_host_api works as on a worker.
 * A plugin built against an older minor has a smaller struct_size and reads as flags 0.
 * Bits this header does not define are refused (register_route returns
 * TRELLIS_ERROR_INVALID_ARGUMENT and the host logs them): a host never loads a plugin of a
 * newer minor, so an unknown bit is a bug, usually a struct that was not zeroed.
 */
#define TRELLIS_ROUTE_NON_BLOCKING 1u

/**
 * A middleware. Configuration names it "PLUGIN.NAME", or "PLUGIN" alone when the plugin
 * registers exactly one middleware. The host copies the strings; user_data must stay
 * valid until on_shutdown of the instance returns.
 */
typedef struct trellis_middleware {
    uint32_t struct_size;
    trellis_str name;
    trellis_on_middleware_fn on_middleware;
    void* user_data;
    uint32_t flags; /* 1.2: TRELLIS_MIDDLEWARE_* bits; 0 when struct_size ends before it */
} trellis_middleware;

/**
 * 1.2: trellis_middleware.flags bit: the middleware never blocks (the rule of
 * TRELLIS_ROUTE_NON_BLOCKING). A route runs inline on an event-loop thread only when its
 * handler and all of its middleware carry the flag; one blocking middleware sends the whole
 * chain to the worker pool. Unknown bits are refused (TRELLIS_ERROR_INVALID_ARGUMENT).
 */
#define TRELLIS_MIDDLEWARE_NON_BLOCKING 1u

/**
 * 1.1: a schema migration of the plugin. The host copies every string during
 * register_migration. Versions are positive and unique per plugin and dialect; the host
 * applies them in ascending order, each in its own transaction, and records each in the
 * table trellis_schema_history. up_sql and down_sql may hold several statements.
 * dialect is empty for SQL that runs on every database, or "sqlite" / "postgresql" for a
 * variant that replaces the common one of the same version on that database.
 */
typedef struct trellis_migration {
    uint32_t struct_size; /* sizeof(trellis_migration) as the plugin saw it */
    int64_t version;
    trellis_str name;
    trellis_str up_sql;
    trellis_str down_sql; /* empty: this migration cannot be reverted */
    trellis_str dialect;
} trellis_migration;

/* ---- 1.3: metrics and readiness checks ----------------------------------- */

/** 1.3: the kind of a metric a plugin registers (trellis_metric_spec.kind). */
typedef int32_t trellis_metric_kind;
#define TRELLIS_METRIC_COUNTER 0   /* only goes up; the name must end in "_total" */
#define TRELLIS_METRIC_GAUGE 1     /* set, or moved up and down */
#define TRELLIS_METRIC_HISTOGRAM 2 /* observations counted in buckets */

/**
 * 1.3: a metric family registered with metric_register. Host-owned; valid until on_destroy
 * of the instance returns. Usable from any thread.
 */
typedef struct trellis_metric trellis_metric;

/**
 * 1.3: what metric_register registers. The host copies everything during the call.
 * name:        must start with the plugin's name and '_' ("notes_created_total" for the
 *              plugin notes) and be a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*).
 * label_names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", none twice; "le" not for a
 *              histogram. Updates give one value per label name, in this order.
 * buckets:     histogram only: strictly increasing upper bounds; NULL / 0 for the host's
 *              default (0.5 ms to 10 s, for durations in seconds).
 * At most 100 distinct label-value sets per metric: updates of further sets are dropped
 * and counted by the host (trellis_plugin_metric_updates_dropped_total).
 */
typedef struct trellis_metric_spec {
    uint32_t struct_size; /* sizeof(trellis_metric_spec) as the plugin saw it */
    trellis_metric_kind kind;
    trellis_str name;
    trellis_str help;
    const trellis_str* label_names;
    size_t label_count;
    const double* buckets;
    size_t bucket_count;
} trellis_metric_spec;

/** 1.3: the result of one readiness check run; see check_set_message. */
typedef struct trellis_check trellis_check;

/**
 * 1.3: a readiness check of the plugin, registered with register_check.
 * Called by:  host, whenever readiness is evaluated (GET /readyz and the like).
 * Threading:  any host thread, concurrently with requests and with itself; must return
 *             quickly (well under a second) and must not block on the database for long.
 * Ownership:  check is valid during the call only.
 * Returns:    TRELLIS_OK when ready; anything else reports the check as failing. A message
 *             set with check_set_message explains either outcome.
 */
typedef trellis_status (*trellis_on_check_fn)(void* user_data, trellis_check* check);

/* ---- What the host implements (the plugin calls these) -------------------- */

/**
 * The host function table. Handed to on_create; valid while the library is loaded.
 * Entries are only ever appended; check struct_size (or abi_minor) before using an
 * entry newer than 1.0. Unless an entry says otherwise:
 *   Threading:  request_* / response_* / next may be called from the thread running the
 *               on_request or on_middleware call that received the handle, only during it.
 *               log may be called from any thread at any time between on_create and
 *               on_destroy. set_error, config_json and register_* from lifecycle calls.
 *   Ownership:  strings passed in are copied by the host before returning; strings handed
 *               out are host-owned and valid as each entry states.
 *   Returns:    trellis_status where the type says so; no entry throws or aborts.
 */
typedef struct trellis_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* -- 1.0: instance ------------------------------------------------------ */

    /** Writes a log line attributed to the plugin. Any thread. */
    void (*log)(trellis_host* host, trellis_log_level level, trellis_str message);

    /** The instance's configuration (the plugin's `config:` section) as JSON text, already
     *  validated against the plugin's schema. Valid until on_destroy returns. */
    trellis_str (*config_json)(trellis_host* host);

    /** Sets the message explaining why the current lifecycle call (on_create, on_init)
     *  fails. The last call wins. */
    void (*set_error)(trellis_host* host, trellis_str message);

    /** Registers a route. Only during on_init. Returns TRELLIS_ERROR_INVALID_ARGUMENT for a
     *  malformed method or path (1.2: or an unknown flag bit; 1.4: or a schema the host
     *  refuses, see trellis_route), TRELLIS_ERROR_STATE outside
     *  on_init. Conflicts with other plugins are detected when the runtime is assembled,
     *  not here. */
    trellis_status (*register_route)(trellis_host* host, const trellis_route* route);

    /** Registers a middleware. Only during on_init. TRELLIS_ERROR_CONFLICT when this
     *  instance already registered one of that name; TRELLIS_ERROR_INVALID_ARGUMENT for a
     *  malformed name (1.2: or an unknown flag bit). */
    trellis_status (*register_middleware)(trellis_host* host, const trellis_middleware* mw);

    /* -- 1.0: request ------------------------------------------------------- */

    /** Request method, upper case. Valid during the call. */
    trellis_str (*request_method)(const trellis_request* request);

    /** Request path as received (percent-encoded, without the query). Valid during the call. */
    trellis_str (*request_path)(const trellis_request* request);

    /** Raw query string without '?', possibly empty. Valid during the call. */
    trellis_str (*request_query)(const trellis_request* request);

    /** Request body bytes. Valid during the call. */
    trellis_str (*request_body)(const trellis_request* request);

    /** Number of entries of a field kind. */
    size_t (*request_field_count)(const trellis_request* request, trellis_field_kind kind);

    /** Entry `index` of a field kind. Returns TRELLIS_ERROR_NOT_FOUND past the end.
     *  Strings valid during the call; attribute strings until the same attribute is set
     *  again. */
    trellis_status (*request_field_at)(const trellis_request* request, trellis_field_kind kind, size_t index,
                                       trellis_str* name_out, trellis_str* value_out);

    /** First entry named `name` of a field kind (headers case-insensitively).
     *  Returns TRELLIS_ERROR_NOT_FOUND when absent. Lifetime as request_field_at. */
    trellis_status (*request_field_get)(const trellis_request* request, trellis_field_kind kind, trellis_str name,
                                        trellis_str* value_out);

    /** Sets a per-request attribute that later middleware and the handler read with
     *  TRELLIS_FIELD_ATTRIBUTE. By convention values are JSON text. */
    trellis_status (*request_set_attribute)(trellis_request* request, trellis_str name, trellis_str value);

    /** Sets the message explaining why on_request/on_middleware returns an error; the host
     *  logs it with the request id. It is never sent to the client. */
    void (*request_set_error)(trellis_request* request, trellis_str message);

    /* -- 1.0: response ------------------------------------------------------ */

    /** Sets the HTTP status (100..599); TRELLIS_ERROR_INVALID_ARGUMENT otherwise. */
    trellis_status (*response_set_status)(trellis_response* response, int32_t status);

    /** Current HTTP status (200 until set). */
    int32_t (*response_status)(const trellis_response* response);

    /** Replaces all values of a header. An empty value removes it. */
    trellis_status (*response_set_header)(trellis_response* response, trellis_str name, trellis_str value);

    /** Appends a header value (for repeatable headers such as Vary or Set-Cookie). */
    trellis_status (*response_add_header)(trellis_response* response, trellis_str name, trellis_str value);

    /** First value of a response header; TRELLIS_ERROR_NOT_FOUND when absent.
     *  Valid until the header is changed. */
    trellis_status (*response_header)(const trellis_response* response, trellis_str name, trellis_str* value_out);

    /** Replaces the response body. */
    trellis_status (*response_set_body)(trellis_response* response, trellis_str body);

    /** The response body so far. Valid until the body is changed. */
    trellis_str (*response_body)(const trellis_response* response);

    /* -- 1.0: middleware ---------------------------------------------------- */

    /** Runs the rest of the chain (further middleware, then the handler) and returns its
     *  status. At most once per next handle; a second call returns TRELLIS_ERROR_STATE. */
    trellis_status (*next)(trellis_next* next);

    /* -- 1.1: database ------------------------------------------------------ *
     * Threading:  db_dialect and db_acquire from any thread between on_init and on_shutdown
     *             (request threads included); a trellis_db and the rows it produced are
     *             used by one thread at a time. 1.2: not from an event-loop thread (a
     *             non-blocking handler or middleware): there db_acquire, db_begin,
     *             db_commit, db_rollback and db_execute return TRELLIS_ERROR_STATE and touch
     *             no connection; db_error explains it on a connection, and STATE from
     *             db_acquire with a non-empty db_dialect means this. db_release and rows_*
     *             work anywhere.
     * SQL text is sent as given; values only ever travel as bound parameters (:name).
     * Errors: TRELLIS_ERROR_UNAVAILABLE (no connection within the pool's acquire timeout,
     * or the connection to the database was lost: return it from a handler to answer 503),
     * TRELLIS_ERROR_CONFLICT (a constraint was violated: unique key, foreign key, check),
     * TRELLIS_ERROR_INVALID_ARGUMENT (the SQL or a parameter is malformed), TRELLIS_ERROR
     * (anything else). db_error gives the database's message for the last failure. */

    /** "sqlite" or "postgresql": the dialect of the configured database; empty when the
     *  host has no database. Static storage. */
    trellis_str (*db_dialect)(trellis_host* host);

    /** Leases a connection from the pool, waiting at most the configured acquire timeout.
     *  On success *db_out must be given back with db_release. TRELLIS_ERROR_STATE when the
     *  host has no database (db_dialect is empty) or, 1.2, on an event-loop thread. */
    trellis_status (*db_acquire)(trellis_host* host, trellis_db** db_out);

    /** Gives the connection back; a transaction still open is rolled back first. */
    void (*db_release)(trellis_db* db);

    /** Starts a transaction on the connection; TRELLIS_ERROR_STATE when one is open. */
    trellis_status (*db_begin)(trellis_db* db);

    /** Commits the open transaction; TRELLIS_ERROR_STATE when none is open. */
    trellis_status (*db_commit)(trellis_db* db);

    /** Rolls the open transaction back; TRELLIS_ERROR_STATE when none is open. */
    trellis_status (*db_rollback)(trellis_db* db);

    /** Runs one SQL statement with bound parameters. When rows_out is not NULL it receives
     *  the result rows (free them with rows_free), also for a statement without result.
     *  When affected_out is not NULL it receives the number of rows changed. */
    trellis_status (*db_execute)(trellis_db* db, trellis_str sql, const trellis_param* params, size_t param_count,
                                 trellis_rows** rows_out, int64_t* affected_out);

    /** The message of the last failed call on this connection. Valid until the next call. */
    trellis_str (*db_error)(const trellis_db* db);

    /** Number of rows and of columns of a result. */
    size_t (*rows_count)(const trellis_rows* rows);
    size_t (*rows_column_count)(const trellis_rows* rows);

    /** Name of a column as the database reports it (lower case for unquoted names).
     *  Empty past the end. Valid until rows_free. */
    trellis_str (*rows_column_name)(const trellis_rows* rows, size_t column);

    /** The value at row, column; TRELLIS_ERROR_NOT_FOUND past the end. */
    trellis_status (*rows_value)(const trellis_rows* rows, size_t row, size_t column, trellis_value* value_out);

    /** Frees a result. */
    void (*rows_free)(trellis_rows* rows);

    /** Registers a migration. Only during on_init. TRELLIS_ERROR_INVALID_ARGUMENT for a
     *  version below 1, an empty up_sql or an unknown dialect; TRELLIS_ERROR_CONFLICT for
     *  a version (and dialect) registered twice. */
    trellis_status (*register_migration)(trellis_host* host, const trellis_migration* migration);

    /* -- 1.3: metrics ------------------------------------------------------- *
     * A plugin built against 1.3 checks abi_minor >= 3 (or struct_size) before calling
     * these; a 1.2 host does not have them. */

    /** Registers a metric family, or finds again the one this plugin registered under the
     *  same name with the same kind, labels and buckets (a reloaded instance does this; the
     *  values carry on). Any time between on_create and on_shutdown, any thread.
     *  TRELLIS_ERROR_INVALID_ARGUMENT for a name without the plugin's prefix, an invalid
     *  name or label name, a counter not ending in "_total", or bad buckets;
     *  TRELLIS_ERROR_CONFLICT when the name is taken with another definition. On error
     *  *error_out (when not NULL) receives the reason: host-owned, valid until the next
     *  metric_register call of this instance. */
    trellis_status (*metric_register)(trellis_host* host, const trellis_metric_spec* spec, trellis_metric** metric_out,
                                      trellis_str* error_out);

    /** Adds value to a counter (value >= 0) or a gauge (any sign), in the series of these
     *  label values (one per label name, in order). Any thread. INVALID_ARGUMENT for the
     *  wrong number of values or a negative counter increment. An update of a new label-value
     *  set beyond the cap is dropped and still returns TRELLIS_OK. */
    trellis_status (*metric_add)(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                                 double value);

    /** Sets a gauge. Otherwise as metric_add. */
    trellis_status (*metric_set)(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                                 double value);

    /** Observes a value in a histogram. Otherwise as metric_add. */
    trellis_status (*metric_observe)(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                                     double value);

    /* -- 1.3: readiness checks ---------------------------------------------- */

    /** Registers a readiness check named `name` (unique in the instance, [a-z0-9_.-]+).
     *  Only during on_create or on_init. user_data must stay valid until on_shutdown
     *  returns. TRELLIS_ERROR_STATE outside those calls, TRELLIS_ERROR_CONFLICT for a name
     *  registered twice, TRELLIS_ERROR_INVALID_ARGUMENT for a bad name or a NULL check. */
    trellis_status (*register_check)(trellis_host* host, trellis_str name, trellis_on_check_fn check,
                                     void* user_data);

    /** Sets the message of a check being run (the last call wins). From the check only. */
    void (*check_set_message)(trellis_check* check, trellis_str message);

    /* Later minors append entries here. */
} trellis_host_api;

/* ---- The plugin descriptor and the entry point ---------------------------- */

/**
 * What a plugin is. Returned by the entry point; the host reads abi_major first, then
 * struct_size, and only then the rest.
 * Ownership:  plugin; the descriptor and every string it points to must stay valid and
 *             unchanged while the library is loaded (static storage).
 */
typedef struct trellis_plugin_descriptor {
    uint16_t abi_major;   /* TRELLIS_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* TRELLIS_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(trellis_plugin_descriptor) as the plugin saw it */

    trellis_str name;        /* [a-z][a-z0-9_]*, equals the configuration key */
    trellis_str version;     /* the plugin's own version, e.g. "1.2.0" */
    trellis_str description; /* one line */

    const trellis_str* dependencies; /* names of plugins that must load first */
    size_t dependency_count;

    trellis_str config_schema_json; /* JSON Schema of the config section; empty for none */

    trellis_on_create_fn on_create;
    trellis_on_init_fn on_init;
    trellis_on_shutdown_fn on_shutdown;
    trellis_on_destroy_fn on_destroy;
} trellis_plugin_descriptor;

/**
 * The one exported symbol, named TRELLIS_PLUGIN_ENTRY_SYMBOL.
 * Called by:  host, once after loading the library, before anything else.
 * Threading:  host control thread.
 * Returns:    the plugin's descriptor (static storage), never NULL.
 */
typedef const trellis_plugin_descriptor* (*trellis_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TRELLIS_ABI_H */
