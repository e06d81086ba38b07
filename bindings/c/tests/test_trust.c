/*
 * test_trust.c: issue #12's rules, tried through the C API by a C program (against the
 * emulator over loopback, on real files): validate goes through the grace-aware face (the
 * machine's fingerprint is sent, the answer updates the record, a revocation it sees is the
 * next check's); a 200 that does not license, a login page or a bare 404 is no verdict and
 * falls back to the cache, the result saying why (reason and detail); an activation is a
 * verdict; a record put back after a revocation is not trusted; a ten-year retry-after is an
 * hour; a cache that cannot be written is reported (cache_refreshed, cache_error), and so is a
 * machine id that cannot be read; and threads checking while Polar hangs do not queue behind
 * the one asking (timed per thread).
 * (tests/trust.rs plays every attack of the issue against the shared Rust core.)
 */
#define _GNU_SOURCE /* unshare, CLONE_NEWNS */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define HOUR 3600
#define WEEK (7 * 24 * HOUR)

/* activate --condition machine=abc, then validate --activation-id ID --condition machine=abc on
 * the same machine: licensed (the fingerprint activate added is sent by validate too). A
 * revocation validate sees is the next check's: no grant from the cache. */
static void validate_binds_the_machine_and_updates_the_record(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  emu_new_key("\"limit_activations\":2", key);
  request = new_request(key);
  must(polar_license_request_set_label(request, "laptop"));
  must(polar_license_request_add_condition_string(request, "machine", "abc"));
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  snprintf(id, sizeof id, "%s", polar_license_result_activation_id(r));
  polar_license_result_free(r);
  polar_license_request_free(request);

  request = new_request(key);
  must(polar_license_request_set_activation_id(request, id));
  must(polar_license_request_add_condition_string(request, "machine", "abc"));
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  CHECK(polar_license_result_cache_refreshed(r));
  polar_license_result_free(r);
  polar_license_request_free(request);
  /* The record remembers the denial. */
  r = status(client, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_INACTIVE);
  polar_license_result_free(r);
  /* Fresh by age, but the denial removed the cache's power to grant: asks, and offline says
   * so instead of licensing. */
  emu_fault("{\"kind\":\"close_immediately\"}");
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  emu_fault(NULL);
  client_done(client, dir);
}

/* JSON text as a JSON string's content (quotes and backslashes escaped). */
static void escape(const char *in, char *out, size_t len) {
  size_t n = 0;
  for (; *in != '\0' && n + 2 < len; in++) {
    if (*in == '"' || *in == '\\') out[n++] = '\\';
    out[n++] = *in;
  }
  out[n] = '\0';
}

/* A 200 whose license says "revoked" is no grant: protocol_error online, and a check with a
 * good cache answers from it, saying what happened online. */
static void a_200_that_says_revoked_is_no_grant(void) {
  static char answer[16384], escaped[20000], fault[20600];
  char dir[64], key[64], body[256];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  char *status;
  client = cached_client(dir, 0, WEEK); /* every check asks */
  emu_new_key("", key);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);

  /* A real answer for the key, its status edited. */
  snprintf(body, sizeof body, "{\"key\":\"%s\",\"organization_id\":\"%s\"}", key, DEMO_ORG);
  CHECK_INT(emu_request("POST", "/v1/customer-portal/license-keys/validate", body, answer,
                        sizeof answer),
            200);
  status = strstr(answer, "\"status\":\"granted\"");
  CHECK(status != NULL);
  if (status == NULL) return;
  memcpy(status, "\"status\":\"revoked\"", strlen("\"status\":\"revoked\""));
  escape(answer, escaped, sizeof escaped);
  snprintf(fault, sizeof fault, "{\"kind\":\"status\",\"status\":200,\"body\":\"%s\"}", escaped);
  emu_fault(fault);

  request = new_request(key);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  polar_license_request_free(request);

  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED,
                   POLAR_LICENSE_REASON_PROTOCOL_ERROR, POLAR_LICENSE_SOURCE_CACHE);
  CHECK(strstr(polar_license_result_detail(r), "status is revoked") != NULL);
  polar_license_result_free(r);
  emu_fault(NULL);
  client_done(client, dir);
}

/* A cache that cannot be written: the answer stands (asked online, since it cannot be counted
 * from the cache), and the result says the cache was not refreshed, and why. */
/* Every write lock of the directory made a directory: saves fail, reads still work. */
static void block_writes(const char *dir) {
  char path[384];
  DIR *d = opendir(dir);
  struct dirent *entry;
  CHECK(d != NULL);
  while (d != NULL && (entry = readdir(d)) != NULL) {
    size_t n = strlen(entry->d_name);
    if (n > 6 && strcmp(entry->d_name + n - 6, ".wlock") == 0) {
      snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
      CHECK_INT(unlink(path), 0);
      CHECK_INT(mkdir(path, 0700), 0);
    }
  }
  if (d != NULL) closedir(d);
}

static void a_cache_that_cannot_be_written_is_reported(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  long before;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":2", key, id);
  block_writes(dir);
  before = emu_request_count();
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(emu_request_count() > before);
  CHECK(!polar_license_result_cache_refreshed(r));
  CHECK(polar_license_result_cache_error(r)[0] != '\0');
  polar_license_result_free(r);
  /* NULL-safe. */
  CHECK(!polar_license_result_cache_refreshed(NULL));
  CHECK_STR(polar_license_result_cache_error(NULL), "");
  client_done(client, dir);
}

/* Polar activates but the cache cannot be written: cache_error, the detail naming the new
 * activation, and the result carrying its id and the license, so the app can keep or free the
 * slot (nothing lost). */
static void an_activation_the_cache_cannot_remember_keeps_its_id(void) {
  char dir[64], key[64], id[64], want[128];
  polar_license_client *client;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":3", key, id);
  block_writes(dir);
  r = activate_labeled(client, key, "second");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
  CHECK(strlen(polar_license_result_activation_id(r)) == 36);
  CHECK(strcmp(polar_license_result_activation_id(r), id) != 0);
  snprintf(want, sizeof want, "activated as %s, but the cache could not remember it",
           polar_license_result_activation_id(r));
  CHECK(strstr(polar_license_result_detail(r), want) != NULL);
  CHECK(strstr(polar_license_result_license_json(r), "\"status\":\"granted\"") != NULL);
  polar_license_result_free(r);
  client_done(client, dir);
}

struct checker {
  polar_license_client *client;
  const char *key;
  pthread_barrier_t *start;
  long elapsed_ms;
  int licensed;
  int from_cache;
  polar_license_reason reason;
};

static long ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void *run_check(void *arg) {
  struct checker *c = arg;
  struct timespec t0;
  polar_license_result *r;
  pthread_barrier_wait(c->start);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  r = check(c->client, c->key);
  c->elapsed_ms = ms_since(&t0);
  c->licensed = polar_license_result_is_licensed(r);
  c->from_cache = polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE;
  c->reason = polar_license_result_reason(r);
  polar_license_result_free(r);
  return NULL;
}

/* Eight threads check a stale key at once while Polar hangs (a short timeout): one of them
 * asks and waits out the timeout; every other one answers from the cache well before it (the
 * cache lock is never held across the request, and a check that sees another asking answers
 * from the cache at once instead of waiting its turn). */
static void threads_do_not_queue_behind_a_hung_polar(void) {
  enum { THREADS = 8, TIMEOUT_MS = 6000 };
  char dir[64], key[64], id[64];
  struct checker checkers[THREADS];
  pthread_t threads[THREADS];
  pthread_barrier_t start;
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  int i, slow = 0, asked = 0;
  long before;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":2", key);
  client = new_client(dir, 0, HOUR, WEEK);
  activate_ok(client, key, id);
  polar_license_client_free(client);
  /* Two hours later (stale: every check wants to ask), a short timeout, and Polar hangs. */
  config = demo_config(emu_url(), dir);
  must(polar_license_config_set_timeout_ms(config, TIMEOUT_MS));
  must(polar_license_config_set_clock_offset_for_testing(config, 2 * HOUR));
  client = client_of(config);
  emu_fault("{\"kind\":\"hang\"}");
  before = emu_request_count();
  CHECK_INT(pthread_barrier_init(&start, NULL, THREADS), 0);
  for (i = 0; i < THREADS; i++) {
    memset(&checkers[i], 0, sizeof checkers[i]);
    checkers[i].client = client;
    checkers[i].key = key;
    checkers[i].start = &start;
    CHECK_INT(pthread_create(&threads[i], NULL, run_check, &checkers[i]), 0);
  }
  for (i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&start);
  for (i = 0; i < THREADS; i++) {
    const struct checker *c = &checkers[i];
    printf("  thread %d: %ld ms, %s, reason %s\n", i, c->elapsed_ms,
           c->licensed ? (c->from_cache ? "licensed/cache" : "licensed/online") : "not licensed",
           c->reason ? polar_license_reason_code(c->reason) : "none");
    CHECK(c->licensed && c->from_cache);
    if (c->elapsed_ms >= TIMEOUT_MS / 2) slow++;
    /* The asker says what happened online; the others asked nothing. */
    if (c->reason == POLAR_LICENSE_REASON_OFFLINE) {
      asked++;
      CHECK(c->elapsed_ms >= TIMEOUT_MS / 2);
    } else {
      CHECK_INT(c->reason, POLAR_LICENSE_REASON_NONE);
      CHECK(c->elapsed_ms < TIMEOUT_MS / 2);
    }
  }
  CHECK_INT(slow, 1);
  CHECK_INT(asked, 1);
  CHECK_INT(emu_request_count() - before, 1); /* one request for eight checks */
  emu_fault(NULL);
  client_done(client, dir);
}

/* The path of the one key record in `dir` (`v2-….cache`, not its ledger `…-seq.cache`);
 * returns 0 when there is not exactly one. */
static int record_file(const char *dir, char *path, size_t len) {
  DIR *d = opendir(dir);
  struct dirent *entry;
  int found = 0;
  while (d != NULL && (entry = readdir(d)) != NULL) {
    size_t n = strlen(entry->d_name);
    if (strncmp(entry->d_name, "v2-", 3) == 0 && n > 6 &&
        strcmp(entry->d_name + n - 6, ".cache") == 0 && strstr(entry->d_name, "-seq") == NULL &&
        strstr(entry->d_name, "-clock") == NULL) {
      snprintf(path, len, "%s/%s", dir, entry->d_name);
      found++;
    }
  }
  if (d != NULL) closedir(d);
  return found == 1;
}

/* A whole file into `buf` (at most `len` bytes); returns its size or -1. */
static long read_file(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "rb");
  size_t n;
  if (f == NULL) return -1;
  n = fread(buf, 1, len, f);
  fclose(f);
  return (long)n;
}

static int write_file(const char *path, const char *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (f == NULL) return 0;
  ok = fwrite(buf, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

/* A hotel's login page (a 200 in HTML, none of Polar's headers) in front of a stale good
 * cache: no verdict of Polar's, so licensed from the cache, the reason protocol_error with
 * its detail; nothing is written as a denial, and once the page is gone Polar licenses
 * again. The same for a bare 404 `{"detail":"Not Found"}` (a wrong base path, a CDN): a 404
 * is a denial only inside Polar's error envelope. */
static void a_login_page_or_a_bare_404_falls_back_to_a_stale_cache(void) {
  static const char *pages[] = {
      "{\"kind\":\"respond\",\"status\":200,\"headers\":[[\"content-type\",\"text/html\"]],"
      "\"body\":\"<html><body><form action=/login>Hotel Wi-Fi: accept the terms</form>"
      "</body></html>\"}",
      "{\"kind\":\"respond\",\"status\":404,\"headers\":[[\"content-type\","
      "\"application/json\"]],\"body\":\"{\\\"detail\\\":\\\"Not Found\\\"}\"}",
  };
  char dir[64], key[64], id[64];
  polar_license_client *client, *later;
  polar_license_request *request;
  polar_license_result *r = NULL;
  size_t i;
  long before;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":2", key, id);
  later = new_client(dir, 2 * HOUR, HOUR, WEEK); /* the verdict is stale: checks ask */
  for (i = 0; i < sizeof pages / sizeof pages[0]; i++) {
    emu_fault(pages[i]);
    /* Online, it is no verdict: protocol_error, never not_found. */
    request = new_request(key);
    must(polar_license_client_validate(later, request, &r));
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
    polar_license_result_free(r);
    polar_license_request_free(request);
    before = emu_request_count();
    r = check(later, key);
    CHECK(emu_request_count() > before); /* it asked */
    CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_PROTOCOL_ERROR,
               POLAR_LICENSE_SOURCE_CACHE);
    CHECK(polar_license_result_detail(r)[0] != '\0');
    CHECK_STR(polar_license_result_activation_id(r), id);
    CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 2 * HOUR - 120);
    CHECK(polar_license_result_cache_refreshed(r));
    polar_license_result_free(r);
    /* No denial was written. */
    r = status(later, key);
    CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
    polar_license_result_free(r);
  }
  emu_fault(NULL);
  EXPECT_CHECK_FROM(later, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                    POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_client_free(later);
  client_done(client, dir);
}

/* A good activation is a verdict: the check right after it answers from the cache with no
 * request, and with Polar gone (refused on the very address the activation was made against)
 * a check that asks is licensed from the cache, the reason offline. */
static void activate_then_polar_down_is_licensed_from_the_cache(void) {
  char dir[64], url[64], id[64];
  polar_license_config *config = NULL;
  polar_license_client *fresh = NULL, *asking = NULL;
  polar_license_result *r;
  int port = closed_port(), pid = emu_start_private(port), i;
  temp_dir(dir);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  for (i = 0; i < 2; i++) {
    config = demo_config(url, dir);
    /* `fresh` keeps the default policy; `asking` asks at every check. */
    if (i == 1) must(polar_license_config_set_grace_policy(config, 0, WEEK, 0));
    *(i == 0 ? &fresh : &asking) = client_of(config);
  }
  activate_ok(fresh, DEMO_KEY, id);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/requests/reset", "", NULL, 0), 204);
  r = CHECKED_FROM(fresh, DEMO_KEY, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  {
    char body[64] = "";
    emu_request_at(port, "GET", "/__emulator/requests", NULL, body, sizeof body);
    CHECK(strstr(body, "\"count\":0") != NULL); /* no request */
  }
  emu_stop_private(pid);
  r = CHECKED_FROM(asking, DEMO_KEY, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 120);
  polar_license_result_free(r);
  EXPECT_CHECK_FROM(fresh, DEMO_KEY, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                    POLAR_LICENSE_SOURCE_CACHE);
  polar_license_client_free(fresh);
  client_done(asking, dir);
}

/* Someone keeps a copy of the record from when the key was good, lets the check see the
 * revocation, and puts the copy back: the ledger knows a newer record was written, so the copy
 * is not trusted (replayed), and with Polar unreachable nothing is licensed. */
static void a_record_put_back_after_a_revocation_is_not_trusted(void) {
  static char saved[1 << 16];
  char dir[64], key[64], id[64], path[384];
  polar_license_client *client, *later;
  polar_license_result *r;
  long size;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":2", key, id);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK(record_file(dir, path, sizeof path));
  size = read_file(path, saved, sizeof saved);
  CHECK(size > 0);
  /* Revoked; two hours later a check asks and learns it. */
  emu_patch_key(key, "{\"status\":\"revoked\"}");
  later = new_client(dir, 2 * HOUR, HOUR, WEEK);
  EXPECT_CHECK(later, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  /* The good copy put back, and Polar unreachable. */
  CHECK(size > 0 && write_file(path, saved, (size_t)size));
  r = status(client, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_UNTRUSTED);
  CHECK(strstr(polar_license_result_detail(r), "replayed") != NULL);
  polar_license_result_free(r);
  emu_fault("{\"kind\":\"close_immediately\"}");
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  r = check(later, key);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  /* With Polar back, the remembered activation is validated: still revoked. */
  emu_fault(NULL);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  polar_license_client_free(later);
  client_done(client, dir);
}

/* A `retry-after` of ten years (a misconfigured or hostile proxy) is read as one hour: the
 * result says 3600, a check with a good cache is licensed from it meanwhile, and an hour
 * later checks ask Polar again. */
static void a_ten_year_retry_after_is_one_hour(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client, *stale, *blocked, *after;
  polar_license_request *request;
  polar_license_result *r = NULL;
  long before;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":2", key, id);
  emu_fault("{\"kind\":\"rate_limited\",\"retry_after\":315360000}");
  request = new_request(key);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_RATE_LIMITED);
  CHECK_INT(polar_license_result_retry_after_seconds(r), 3600);
  polar_license_result_free(r);
  polar_license_request_free(request);
  stale = new_client(dir, 2 * HOUR, HOUR, WEEK);
  r = CHECKED_FROM(stale, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_RATE_LIMITED,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_INT(polar_license_result_retry_after_seconds(r), 3600);
  polar_license_result_free(r);
  emu_fault(NULL);
  /* Within the hour: nothing is sent, the cache answers. */
  blocked = new_client(dir, 2 * HOUR + 1800, HOUR, WEEK);
  before = emu_request_count();
  r = check(blocked, key);
  CHECK_INT(emu_request_count(), before);
  CHECK(polar_license_result_is_licensed(r));
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
  polar_license_result_free(r);
  /* After it (not ten years later): Polar is asked and licenses. */
  after = new_client(dir, 3 * HOUR + 60, HOUR, WEEK);
  r = check(after, key);
  CHECK(emu_request_count() > before);
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  polar_license_client_free(after);
  polar_license_client_free(blocked);
  polar_license_client_free(stale);
  client_done(client, dir);
}

/* The record's path made a directory: it reads as no record (not a hang, not a crash), the
 * answer comes online, and the result says the cache was not refreshed; validate says so
 * too. */
static void a_record_path_that_is_a_directory_is_reported(void) {
  char dir[64], key[64], id[64], path[384];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  activated_key(client, "\"limit_activations\":2", key, id);
  CHECK(record_file(dir, path, sizeof path));
  CHECK_INT(unlink(path), 0);
  CHECK_INT(mkdir(path, 0700), 0);
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(!polar_license_result_cache_refreshed(r));
  CHECK(polar_license_result_cache_error(r)[0] != '\0');
  printf("  check: cache_error: %s\n", polar_license_result_cache_error(r));
  polar_license_result_free(r);
  request = new_request(key);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK(!polar_license_result_cache_refreshed(r));
  CHECK(polar_license_result_cache_error(r)[0] != '\0');
  polar_license_result_free(r);
  polar_license_request_free(request);
  client_done(client, dir);
}

/* This machine's id exists but cannot be read (here: /etc/machine-id is a directory, in a
 * private mount namespace of a child process): activate, check and a validate of an
 * activation answer cache_error with that message and send nothing (a fingerprint that
 * silently changed would take a new activation slot); a bare validate is answered online and
 * says the cache was not refreshed, why included. Needs root (a mount namespace). */
static void an_unreadable_machine_id_is_a_cache_error(void) {
  const char *why = "machine's id could not be read";
  char dir[64], key[64];
  pid_t pid;
  int exit_status = -1;
  if (geteuid() != 0) {
    printf("  skipped: needs root for a private mount namespace\n");
    return;
  }
  temp_dir(dir);
  emu_new_key("\"limit_activations\":2", key);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    polar_license_client *client;
    polar_license_request *request;
    polar_license_result *r = NULL;
    long before;
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", "/etc", "tmpfs", 0, "mode=0755") != 0 ||
        mkdir("/etc/machine-id", 0755) != 0) {
      perror("a private /etc");
      _exit(3);
    }
    client = new_client(dir, 0, HOUR, WEEK);
    CHECK_STR(polar_license_client_machine_fingerprint(client), "");
    before = emu_request_count();
    r = activate_labeled(client, key, "laptop");
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
    CHECK(strstr(polar_license_result_detail(r), why) != NULL);
    polar_license_result_free(r);
    r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
    CHECK(strstr(polar_license_result_detail(r), why) != NULL);
    CHECK(!polar_license_result_is_licensed(r));
    polar_license_result_free(r);
    r = validate_activation(client, key, OTHER_UUID);
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
    CHECK(strstr(polar_license_result_detail(r), why) != NULL);
    polar_license_result_free(r);
    CHECK_INT(emu_request_count(), before); /* nothing was sent */
    request = new_request(key);
    must(polar_license_client_validate(client, request, &r));
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
    CHECK(!polar_license_result_cache_refreshed(r));
    CHECK(strstr(polar_license_result_cache_error(r), why) != NULL);
    polar_license_result_free(r);
    polar_license_request_free(request);
    r = status(client, key);
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
    CHECK(strstr(polar_license_result_detail(r), why) != NULL);
    polar_license_result_free(r);
    polar_license_client_free(client);
    harness_child_exit();
  }
  CHECK(waitpid(pid, &exit_status, 0) == pid);
  if (WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 3) {
    /* Root without the right to make a mount namespace (a restricted container). */
    printf("  skipped: no private mount namespace here\n");
  } else {
    CHECK(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);
  }
  remove_tree(dir);
}

int main(void) {
  RUN(validate_binds_the_machine_and_updates_the_record);
  RUN(a_200_that_says_revoked_is_no_grant);
  RUN(a_cache_that_cannot_be_written_is_reported);
  RUN(an_activation_the_cache_cannot_remember_keeps_its_id);
  RUN(threads_do_not_queue_behind_a_hung_polar);
  RUN(a_login_page_or_a_bare_404_falls_back_to_a_stale_cache);
  RUN(activate_then_polar_down_is_licensed_from_the_cache);
  RUN(a_record_put_back_after_a_revocation_is_not_trusted);
  RUN(a_ten_year_retry_after_is_one_hour);
  RUN(a_record_path_that_is_a_directory_is_reported);
  RUN(an_unreadable_machine_id_is_a_cache_error);
  return harness_summary("test_trust");
}
