/*
 * test_faults.c: the fault matrix (issue #6 item 3) through the C ABI, the same thirteen rows
 * as tests/fault_matrix.rs (Rust) and tests/js/faults.test.mjs (the npm package). For each
 * server fault, against the emulator:
 *
 *   1. an online validate gives the reason code of docs/interfaces.md §1, with exactly one
 *      request;
 *   2. with no cache, check does not grant (same code, one request);
 *   3. with a valid cached verdict, check answers as the grace policy says: licensed from the
 *      cache for every one of them (offline, rate_limited, server_error, and protocol_error:
 *      an answer that is not Polar's verdict falls back too, docs/interfaces.md §4), with the
 *      fault's reason as what happened online, and one request;
 *   4. the cached verdict survives: status still holds the same good verdict, and once the
 *      fault is cleared a check is licensed again;
 *   5. after a 429 the block holds: the next checks send nothing until it ends;
 *   6. the client lets go of every faulted connection: no fault body (slow, 50 MB) is still
 *      being written once the calls returned.
 *
 * test-c.sh runs it plain, under ASan+UBSan and under valgrind (no crash, no leak). Each row is
 * also written to a TSV file for scripts/fault-table.sh: $POLAR_FAULT_MATRIX_OUT, by default
 * target/fault-matrix/c.tsv.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#ifdef _WIN32
#include <direct.h>
#else
#include <unistd.h>
#endif

#include "harness.h"

#define WEEK (7 * 24 * 3600)
/* The retry-after of the rate_limited_retry_after row, and Polar's block without one. */
#define RETRY_AFTER 600
#define DEFAULT_BLOCK 60
/* The hang and slow-body rows time out on purpose (each faulted call costs this much); every
 * other row keeps the default, so a slow machine (valgrind) never turns them into offline. */
#define SHORT_TIMEOUT_MS 1000
#define TIMEOUT_MS 10000

struct row {
  const char *id;
  const char *fault; /* `{"kind":...}` for the emulator; NULL: the server is down (refused) */
  polar_license_reason expected;
  int64_t block; /* the 429 block in seconds, 0 for other rows */
  uint64_t timeout_ms;
};

static const struct row rows[] = {
    {"connection_refused", NULL, POLAR_LICENSE_REASON_OFFLINE, 0, TIMEOUT_MS},
    {"hang_timeout", "{\"kind\":\"hang\"}", POLAR_LICENSE_REASON_OFFLINE, 0, SHORT_TIMEOUT_MS},
    {"slow_body", "{\"kind\":\"slow_body\",\"ms_per_byte\":200}", POLAR_LICENSE_REASON_OFFLINE, 0,
     SHORT_TIMEOUT_MS},
    {"status_500", "{\"kind\":\"status\",\"status\":500,\"body\":\"Internal Server Error\"}",
     POLAR_LICENSE_REASON_SERVER_ERROR, 0, TIMEOUT_MS},
    {"status_502",
     "{\"kind\":\"status\",\"status\":502,"
     "\"body\":\"<html><body><h1>502 Bad Gateway</h1></body></html>\"}",
     POLAR_LICENSE_REASON_SERVER_ERROR, 0, TIMEOUT_MS},
    {"status_503",
     "{\"kind\":\"status\",\"status\":503,\"body\":\"{\\\"detail\\\":\\\"Service Unavailable\\\"}\"}",
     POLAR_LICENSE_REASON_SERVER_ERROR, 0, TIMEOUT_MS},
    {"rate_limited", "{\"kind\":\"rate_limited\",\"retry_after\":null}",
     POLAR_LICENSE_REASON_RATE_LIMITED, DEFAULT_BLOCK, TIMEOUT_MS},
    {"rate_limited_retry_after", "{\"kind\":\"rate_limited\",\"retry_after\":600}",
     POLAR_LICENSE_REASON_RATE_LIMITED, RETRY_AFTER, TIMEOUT_MS},
    {"malformed_json", "{\"kind\":\"malformed\"}", POLAR_LICENSE_REASON_PROTOCOL_ERROR, 0,
     TIMEOUT_MS},
    {"truncated_body", "{\"kind\":\"truncated\"}", POLAR_LICENSE_REASON_PROTOCOL_ERROR, 0,
     TIMEOUT_MS},
    {"huge_body", "{\"kind\":\"huge\",\"bytes\":52428800}", POLAR_LICENSE_REASON_PROTOCOL_ERROR, 0,
     TIMEOUT_MS},
    {"unexpected_status",
     "{\"kind\":\"status\",\"status\":418,\"body\":\"{\\\"detail\\\":\\\"I'm a teapot\\\"}\"}",
     POLAR_LICENSE_REASON_PROTOCOL_ERROR, 0, TIMEOUT_MS},
    {"status_401",
     "{\"kind\":\"status\",\"status\":401,\"body\":\"{\\\"error\\\":\\\"invalid_token\\\","
     "\\\"error_description\\\":\\\"The access token provided is expired, revoked, malformed, or "
     "invalid for other reasons.\\\"}\"}",
     POLAR_LICENSE_REASON_PROTOCOL_ERROR, 0, TIMEOUT_MS},
};

#define ROWS (sizeof rows / sizeof rows[0])

static const struct row *current;
static FILE *tsv;

/* A client for `url` with its cache in `cache_dir`: every check asks the server
 * (revalidate_after 0), a week of grace, the clock moved by `offset` seconds. */
static polar_license_client *client_at(const char *url, const char *cache_dir, int64_t offset,
                                       uint64_t timeout_ms) {
  polar_license_config *config = demo_config(url, cache_dir);
  must(polar_license_config_set_timeout_ms(config, timeout_ms));
  must(polar_license_config_set_grace_policy(config, 0, WEEK, 600));
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  return client_of(config);
}

static int licensed_from(const polar_license_result *r, polar_license_source source) {
  return polar_license_result_is_licensed(r) && polar_license_result_source(r) == source;
}

/* `licensed/online`, `licensed/cache`, or the reason's code. */
static void code_of(const polar_license_result *r, char out[64]) {
  polar_license_reason reason = polar_license_result_reason(r);
  if (polar_license_result_is_licensed(r)) {
    snprintf(out, 64, "licensed/%s",
             polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE ? "cache" : "online");
  } else {
    snprintf(out, 64, "%s", reason ? polar_license_reason_code(reason) : "none");
  }
}

/* Requests the emulator received since the last call. */
static long requests(void) {
  static long seen = -1;
  long now = emu_request_count(), n = seen < 0 ? 0 : now - seen;
  seen = now;
  return n;
}

/* Fault bodies the emulator is still writing (GET /__emulator/streams). */
static long open_streams(void) {
  char body[128];
  const char *at;
  if (emu_request("GET", "/__emulator/streams", NULL, body, sizeof body) != 200) return -1;
  at = strstr(body, "\"open\":");
  return at ? atol(at + 7) : -1;
}

/* Waits (20 ms steps, at most 10 s) until no fault body is being written; returns the count
 * left. A bounded wait for an event, not a timing assertion: a connection the client kept open
 * would keep the emulator streaming until its own 30 s write stall limit. */
static long wait_streams_closed(void) {
  struct timespec step = {0, 20 * 1000 * 1000};
  long open = open_streams();
  int i;
  for (i = 0; i < 500 && open != 0; i++) {
    nanosleep(&step, NULL);
    open = open_streams();
  }
  return open;
}

/* The requests Polar received since the last look, checked against `want` and added to
 * `total`. */
#define CHECK_REQUESTS(total, want)                                                               \
  do {                                                                                            \
    long requests_ = requests();                                                                  \
    CHECK_INT(requests_, want);                                                                   \
    (total) += requests_;                                                                         \
  } while (0)

static void run_row(void) {
  const struct row *row = current;
  const int down = row->fault == NULL;
  const int rate_limited = row->expected == POLAR_LICENSE_REASON_RATE_LIMITED;
  const polar_license_outcome outcome = row->expected == POLAR_LICENSE_REASON_PROTOCOL_ERROR
                                            ? POLAR_LICENSE_OUTCOME_ERROR
                                            : POLAR_LICENSE_OUTCOME_UNVERIFIED;
  const long one = down ? 0 : 1;
  /* Polar down: a private emulator, stopped once the cache is made, so the faulted calls go to
   * the very origin the cache is bound to (and are refused there). */
  const int port = down ? closed_port() : 0;
  int private_pid = down ? emu_start_private(port) : 0;
  char private_url[64];
  const char *url = emu_url();
  char cached_dir[64], empty_dir[64], key[64], other[64];
  char got[64] = "", no_cache[64] = "", cached[64] = "";
  polar_license_client *healthy, *faulty, *bare, *later;
  polar_license_request *request;
  polar_license_result *r = NULL;
  int64_t verified_at;
  long total = 0;
  int failures_before_cache;

  temp_dir(cached_dir);
  temp_dir(empty_dir);
  if (down) {
    snprintf(private_url, sizeof private_url, "http://127.0.0.1:%d", port);
    url = private_url;
    snprintf(key, sizeof key, "%s", DEMO_KEY);
    snprintf(other, sizeof other, "%s", DEMO_KEY);
  } else {
    emu_new_key("", key);
    emu_new_key("", other);
  }

  /* A valid cached verdict for `key`, made against the healthy emulator. */
  healthy = client_at(url, cached_dir, 0, TIMEOUT_MS);
  r = CHECKED_FROM(healthy, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_ONLINE);
  verified_at = polar_license_result_verified_at(r);
  polar_license_result_free(r);
  requests();

  if (down) {
    emu_stop_private(private_pid);
    private_pid = 0;
  } else {
    emu_fault(row->fault);
  }
  faulty = client_at(url, cached_dir, 0, row->timeout_ms);
  bare = client_at(url, empty_dir, 0, row->timeout_ms);

  /* 1. validate online: the docs/interfaces.md §1 code, one request. */
  request = new_request(other);
  must(polar_license_client_validate(faulty, request, &r));
  code_of(r, got);
  CHECK_ANSWER(r, outcome, row->expected);
  if (rate_limited) {
    CHECK_INT(polar_license_result_retry_after_seconds(r),
              row->block == RETRY_AFTER ? RETRY_AFTER : -1);
  }
  if (strcmp(row->id, "huge_body") == 0) {
    /* Refused for its size (not read to the end and then found malformed). */
    CHECK(strstr(polar_license_result_detail(r), "larger than the cap") != NULL);
  }
  if (strcmp(row->id, "truncated_body") == 0) {
    CHECK(strstr(polar_license_result_detail(r), "truncated") != NULL);
  }
  polar_license_result_free(r);
  polar_license_request_free(request);
  CHECK_REQUESTS(total, one);

  /* 2. No cache: check never grants. */
  r = check(bare, other);
  code_of(r, no_cache);
  CHECK_ANSWER(r, outcome, row->expected);
  polar_license_result_free(r);
  CHECK_REQUESTS(total, one);
  if (rate_limited) {
    /* Within the block: refused with no request. */
    EXPECT_CHECK(bare, other, outcome, row->expected);
    CHECK_REQUESTS(total, 0);
  }
  r = status(bare, other);
  CHECK_INT(polar_license_result_grace_remaining_seconds(r), -1);
  polar_license_result_free(r);

  /* 3. A valid cache: licensed from it (no fault here is a verdict of Polar's), the fault's
   * reason telling what happened online. */
  r = check(faulty, key);
  code_of(r, cached);
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, row->expected, POLAR_LICENSE_SOURCE_CACHE);
  CHECK_INT(polar_license_result_verified_at(r), verified_at);
  CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 120);
  CHECK(polar_license_result_grace_remaining_seconds(r) <= WEEK);
  CHECK(polar_license_result_cache_refreshed(r));
  polar_license_result_free(r);
  CHECK_REQUESTS(total, one);
  if (rate_limited) {
    r = check(faulty, key);
    CHECK(licensed_from(r, POLAR_LICENSE_SOURCE_CACHE));
    polar_license_result_free(r);
    CHECK_REQUESTS(total, 0);
  }

  /* 6. Every faulted connection let go: the emulator's writes fail and its streams end. */
  CHECK_INT(wait_streams_closed(), 0);

  /* 4. The cached verdict is still there, unchanged. */
  failures_before_cache = harness_current_failures();
  r = status(faulty, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  CHECK_INT(polar_license_result_reason(r), POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_verified_at(r), verified_at);
  CHECK(polar_license_result_grace_remaining_seconds(r) > 0);
  polar_license_result_free(r);

  /* 5. Fault cleared: licensed again (from the cache while a 429 block lasts, then online). */
  if (down) {
    private_pid = emu_start_private(port);
  } else {
    emu_fault(NULL);
  }
  requests();
  later = healthy;
  if (rate_limited) {
    r = check(healthy, key);
    CHECK(licensed_from(r, POLAR_LICENSE_SOURCE_CACHE));
    polar_license_result_free(r);
    CHECK_INT(requests(), 0);
    /* The clock past the end of the block. */
    later = client_at(emu_url(), cached_dir, row->block + 10, TIMEOUT_MS);
  }
  r = check(later, key);
  CHECK(licensed_from(r, POLAR_LICENSE_SOURCE_ONLINE));
  polar_license_result_free(r);
  /* (The private emulator's requests are its own.) */
  CHECK_INT(requests(), one);
  emu_stop_private(private_pid);

  fprintf(tsv, "c\t%s\t%s\t%s\t%s\t%s\t%s\t%ld\t%ld\t%s\n", row->id,
          polar_license_reason_code(row->expected), got, no_cache, cached,
          harness_current_failures() == failures_before_cache ? "yes" : "no", total, one * 3,
          harness_current_failures() == 0 ? "pass" : "FAIL");
  fflush(tsv);

  if (later != healthy) polar_license_client_free(later);
  polar_license_client_free(healthy);
  polar_license_client_free(faulty);
  client_done(bare, cached_dir);
  remove_tree(empty_dir);
}

/* Creates every missing directory of `path`'s parent. */
static void make_parents(const char *path) {
  char dir[512];
  char *slash;
  snprintf(dir, sizeof dir, "%s", path);
  for (slash = strchr(dir + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
#ifdef _WIN32
    if (_mkdir(dir) != 0 && errno != EEXIST) perror(dir);
#else
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) perror(dir);
#endif
    *slash = '/';
  }
}

int main(void) {
  const char *out = getenv("POLAR_FAULT_MATRIX_OUT");
  size_t i;
  int status;
  if (out == NULL || out[0] == '\0') out = "target/fault-matrix/c.tsv";
  make_parents(out);
  tsv = fopen(out, "w");
  if (tsv == NULL) {
    perror(out);
    return 2;
  }
  fprintf(tsv, "face\tfault\texpected\tgot\tno_cache\tcached\tcache_kept\trequests\t"
               "expected_requests\tresult\n");
  for (i = 0; i < ROWS; i++) {
    current = &rows[i];
    harness_run(rows[i].id, run_row);
  }
  status = harness_summary("test_faults");
  fclose(tsv);
  return status;
}
