/*
 * test_devices.c: out of activations from C (issue #64): sign in with the code Polar emails,
 * list the key's devices (this machine marked), free another device by id, then activate here;
 * and each failure typed: a wrong or used code, device management off, an expired session, the
 * code rate limit, a key that is not the customer's, no session, NULLs and bad UTF-8.
 *
 * Each test runs against a private emulator of its own (the demo seed: the demo key has 3
 * slots, its benefit has device management on, its customer is jane.doe@gmail.com), so its
 * clock and its per-address code limit touch no other test. The code is read from the
 * emulator's control route, as a person reads it from the email.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <process.h>
#else
#include <unistd.h>
#endif

#include "harness.h"

#define EMAIL "jane.doe@gmail.com"

static int port;
static char url[64];

static void private_start(int *pid) {
  port = closed_port();
  *pid = emu_start_private(port);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
}

/* A private emulator with Polar's rate limits on (the code routes' 6 a minute per address),
 * started as emu_start_private starts one, its limits turned on through its control route
 * (`POST /__emulator/rate-limit`, as `--rate-limit` turns them on at start). */
static void private_start_rate_limited(int *pid) {
  private_start(pid);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/rate-limit", "{\"enabled\":true}", NULL, 0),
            204);
}

/* A client of the private emulator with its cache in `dir` (made here), on a machine of its
 * own (its id the directory's name: the tests play several machines on one, and activations
 * record the machine's fingerprint, issue #80). */
static polar_license_client *client_in(char dir[64]) {
  polar_license_config *config;
  temp_dir(dir);
  config = demo_config(url, dir);
  must(polar_license_config_set_machine_id(config, dir));
  return client_of(config);
}

/* A client of the private emulator with its cache in `dir` (made here) on the machine
 * `machine`. */
static polar_license_client *client_on(const char *machine, char dir[64]) {
  polar_license_config *config;
  temp_dir(dir);
  config = demo_config(url, dir);
  must(polar_license_config_set_machine_id(config, machine));
  return client_of(config);
}

/* The newest sign-in code the private emulator has emailed (6 characters), into `code`. */
static void last_code(char code[8]) {
  static char body[65536];
  const char *at, *found = NULL;
  code[0] = '\0';
  if (emu_request_at(port, "GET", "/__emulator/customer-session/codes", NULL, body,
                     sizeof body) != 200) {
    CHECK(!"the codes route answered");
    return;
  }
  for (at = strstr(body, "\"code\":\""); at != NULL; at = strstr(at + 1, "\"code\":\"")) {
    found = at + 8;
  }
  if (found == NULL || strlen(found) < 6) {
    CHECK(!"a code was emailed");
    return;
  }
  memcpy(code, found, 6);
  code[6] = '\0';
}

static void set_clock(long long offset) {
  char body[64];
  snprintf(body, sizeof body, "{\"offset_seconds\":%lld}", offset);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/clock", body, NULL, 0), 204);
}

/* A portal call's result, expected to be `error`, with its code (two checks, three with a
 * failure's message). */
static void expect_portal(polar_license_portal_result *r, polar_license_portal_error error,
                          const char *code) {
  CHECK_INT(polar_license_portal_result_error(r), error);
  CHECK_STR(polar_license_portal_result_code(r), code);
  if (error != POLAR_LICENSE_PORTAL_ERROR_NONE) {
    const char *message = polar_license_portal_result_message(r);
    CHECK(message[0] != '\0');
    /* No session in any message. */
    CHECK(strstr(message, "polar_cst_") == NULL);
  }
}

/* polar_license_client_free_device of `id`, then CHECK_ANSWER of its result, which is freed. */
#define EXPECT_FREED(client, key, id, outcome, reason)                                            \
  do {                                                                                            \
    polar_license_result *freed_ = NULL;                                                          \
    must(polar_license_client_free_device((client), (key), (id), &freed_));                       \
    CHECK_ANSWER(freed_, (outcome), (reason));                                                    \
    polar_license_result_free(freed_);                                                            \
  } while (0)

/* expect_portal of a refusal, its result's reason too; frees the result. */
static void expect_refusal(polar_license_portal_result *r, polar_license_portal_error error,
                           const char *code, polar_license_reason reason) {
  expect_portal(r, error, code);
  CHECK_INT(polar_license_portal_result_reason(r), reason);
  polar_license_portal_result_free(r);
}

static polar_license_portal_result *ask_code(polar_license_client *client, const char *email) {
  polar_license_portal_result *r = NULL;
  must(polar_license_client_request_sign_in_code(client, email, NULL, &r));
  return r;
}

static polar_license_portal_result *sign_in_with(polar_license_client *client, const char *code) {
  polar_license_portal_result *r = NULL;
  must(polar_license_client_sign_in(client, code, &r));
  return r;
}

/* Asks for a code and signs in with it (typed in lower case); the code used into `used`. */
static void sign_in_code(polar_license_client *client, char used[8]) {
  char code[8];
  size_t i;
  polar_license_portal_result *r = ask_code(client, EMAIL);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  polar_license_portal_result_free(r);
  last_code(code);
  memcpy(used, code, 8);
  for (i = 0; code[i] != '\0'; i++) {
    if (code[i] >= 'A' && code[i] <= 'Z') code[i] = (char)(code[i] - 'A' + 'a');
  }
  r = sign_in_with(client, code);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  polar_license_portal_result_free(r);
  CHECK(polar_license_client_signed_in(client));
}

static void sign_in(polar_license_client *client) {
  char used[8];
  sign_in_code(client, used);
}

static polar_license_portal_result *list(polar_license_client *client, const char *key) {
  polar_license_portal_result *r = NULL;
  must(polar_license_client_list_devices(client, key, &r));
  return r;
}

static void activated(polar_license_client *client, const char *key, const char *label,
                      char id[64]) {
  polar_license_result *r = activate_labeled(client, key, label);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  snprintf(id, 64, "%s", polar_license_result_activation_id(r));
  polar_license_result_free(r);
}

/* The index of device `id` in a list, or -1. */
static long device_index(const polar_license_portal_result *r, const char *id) {
  size_t i, n = polar_license_portal_result_device_count(r);
  for (i = 0; i < n; i++) {
    if (strcmp(polar_license_portal_result_device_id(r, i), id) == 0) return (long)i;
  }
  return -1;
}

static void sign_in_list_free_another_and_activate_here(void) {
  int pid;
  char old_dir[64], desk_dir[64], here_dir[64], new_dir[64];
  char old_id[64], desk_id[64], here_id[64], new_id[64], code[8];
  polar_license_client *old, *desk, *here, *fresh;
  polar_license_portal_result *r;
  polar_license_result *a;
  int64_t limit = 0;
  long i;

  private_start(&pid);
  old = client_in(old_dir);
  desk = client_in(desk_dir);
  here = client_in(here_dir);
  fresh = client_in(new_dir);
  /* The key (limit 3) on three machines; a fourth is refused. */
  activated(old, DEMO_KEY, "Old laptop", old_id);
  activated(desk, DEMO_KEY, "Desktop", desk_id);
  activated(here, DEMO_KEY, "This laptop", here_id);
  a = activate_labeled(fresh, DEMO_KEY, "New laptop");
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_ACTIVATION_LIMIT);
  polar_license_result_free(a);

  /* No session yet: typed, nothing sent. */
  CHECK(!polar_license_client_signed_in(here));
  r = list(here, DEMO_KEY);
  expect_refusal(r, POLAR_LICENSE_PORTAL_ERROR_NOT_SIGNED_IN, "not_signed_in",
                 POLAR_LICENSE_REASON_INVALID_INPUT);

  /* A wrong code. */
  r = ask_code(here, EMAIL);
  polar_license_portal_result_free(r);
  r = sign_in_with(here, "ZZZZZ9");
  expect_refusal(r, POLAR_LICENSE_PORTAL_ERROR_CODE_INVALID_OR_EXPIRED, "code_invalid_or_expired",
                 POLAR_LICENSE_REASON_NONE);
  CHECK(!polar_license_client_signed_in(here));

  /* Signed in: three devices, oldest first, this machine's marked, the limit. */
  sign_in_code(here, code);
  /* The session is sealed: its token is in no file under the cache. */
  CHECK(!tree_holds(here_dir, "polar_cst_"));
  r = list(here, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  CHECK_INT(polar_license_portal_result_device_count(r), 3);
  CHECK_STR(polar_license_portal_result_device_id(r, 0), old_id);
  CHECK_STR(polar_license_portal_result_device_label(r, 0), "Old laptop");
  CHECK_STR(polar_license_portal_result_device_id(r, 2), here_id);
  CHECK_STR(polar_license_portal_result_device_label(r, 2), "This laptop");
  CHECK(polar_license_portal_result_device_this_machine(r, 2));
  CHECK(!polar_license_portal_result_device_this_machine(r, 0));
  CHECK(!polar_license_portal_result_device_this_machine(r, 1));
  CHECK(polar_license_portal_result_device_activated_at(r, 0) > 1700000000);
  CHECK(polar_license_portal_result_device_activated_at(r, 0) <=
        polar_license_portal_result_device_activated_at(r, 2));
  CHECK(polar_license_portal_result_limit_activations(r, &limit));
  CHECK_INT(limit, 3);
  /* Out of range: empty, never NULL. */
  CHECK_STR(polar_license_portal_result_device_id(r, 3), "");
  CHECK_STR(polar_license_portal_result_device_label(r, 99), "");
  CHECK_INT(polar_license_portal_result_device_activated_at(r, 3), -1);
  CHECK(!polar_license_portal_result_device_this_machine(r, 3));
  polar_license_portal_result_free(r);

  /* The code that signed in is used: a second sign-in with it is refused. */
  r = sign_in_with(here, code);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_CODE_INVALID_OR_EXPIRED, "code_invalid_or_expired");
  polar_license_portal_result_free(r);
  /* The session held stays. */
  CHECK(polar_license_client_signed_in(here));

  /* The new machine signs in, frees the old laptop (dead: no app there) and activates. */
  sign_in(fresh);
  r = list(fresh, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  CHECK_INT(polar_license_portal_result_device_count(r), 3);
  for (i = 0; i < 3; i++) CHECK(!polar_license_portal_result_device_this_machine(r, (size_t)i));
  polar_license_portal_result_free(r);
  must(polar_license_client_free_device(fresh, DEMO_KEY, old_id, &a));
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(a), old_id);
  polar_license_result_free(a);
  activated(fresh, DEMO_KEY, "New laptop", new_id);
  r = list(fresh, DEMO_KEY);
  CHECK_INT(polar_license_portal_result_device_count(r), 3);
  CHECK_INT(device_index(r, old_id), -1);
  CHECK(device_index(r, desk_id) >= 0);
  i = device_index(r, new_id);
  CHECK(i >= 0);
  if (i >= 0) CHECK(polar_license_portal_result_device_this_machine(r, (size_t)i));
  polar_license_portal_result_free(r);
  /* The new machine is licensed; freed again, the old one is Polar's not_found. */
  EXPECT_CHECK(fresh, DEMO_KEY, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  EXPECT_FREED(fresh, DEMO_KEY, old_id, POLAR_LICENSE_OUTCOME_DENIED,
               POLAR_LICENSE_REASON_NOT_FOUND);

  /* A key that is not the customer's. */
  r = list(fresh, "SOMEONE-ELSES-KEY");
  expect_refusal(r, POLAR_LICENSE_PORTAL_ERROR_KEY_NOT_FOUND, "key_not_found",
                 POLAR_LICENSE_REASON_NOT_FOUND);

  /* Signed out: the session is gone. */
  polar_license_client_sign_out(fresh);
  CHECK(!polar_license_client_signed_in(fresh));
  r = list(fresh, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NOT_SIGNED_IN, "not_signed_in");
  polar_license_portal_result_free(r);

  client_done(old, old_dir);
  client_done(desk, desk_dir);
  client_done(here, here_dir);
  client_done(fresh, new_dir);
  emu_stop_private(pid);
}

static void device_management_off_expired_session_and_bad_input(void) {
  int pid;
  char dir[64], id[64], key[64], body[256];
  polar_license_client *client;
  polar_license_portal_result *r;

  private_start(&pid);
  client = client_in(dir);
  /* A key of the demo customer on a benefit without device management. */
  snprintf(key, sizeof key, "CTEST-OFF-%ld", (long)rand());
  snprintf(body, sizeof body,
           "{\"key\":\"%s\",\"benefit_id\":\"" OTHER_UUID "\",\"customer_id\":\"" DEMO_CUSTOMER
           "\",\"limit_activations\":2}",
           key);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/keys", body, NULL, 0), 201);
  activated(client, key, "This laptop", id);
  sign_in(client);
  r = list(client, key);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_DEVICE_MANAGEMENT_OFF, "device_management_off");
  CHECK(strstr(polar_license_portal_result_message(r), "enable_customer_admin") != NULL);
  CHECK_INT(polar_license_portal_result_device_count(r), 0);
  polar_license_portal_result_free(r);
  /* Freeing by id still works (the public deactivate needs no session). */
  EXPECT_FREED(client, key, id, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);

  /* Bad input, refused unsent. */
  r = list(client, " padded ");
  expect_refusal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input",
                 POLAR_LICENSE_REASON_INVALID_INPUT);
  r = ask_code(client, "not-an-email");
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input");
  polar_license_portal_result_free(r);
  r = sign_in_with(client, "12");
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input");
  polar_license_portal_result_free(r);
  /* A bad sign-in leaves the session held. */
  CHECK(polar_license_client_signed_in(client));

  /* An hour later (Polar's clock) the session is over: typed, and forgotten. */
  set_clock(3601);
  r = list(client, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_SESSION_EXPIRED, "session_expired");
  polar_license_portal_result_free(r);
  CHECK(!polar_license_client_signed_in(client));
  r = list(client, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NOT_SIGNED_IN, "not_signed_in");
  polar_license_portal_result_free(r);
  set_clock(0);

  client_done(client, dir);
  emu_stop_private(pid);
}

static void the_code_routes_rate_limit_with_the_wait(void) {
  int pid, tries, limited = 0;
  char dir[64];
  uint64_t wait = 0;
  polar_license_client *client;
  polar_license_portal_result *r = NULL;

  private_start_rate_limited(&pid);
  client = client_in(dir);
  /* Polar allows 6 a minute per address: the 7th (at most the 13th) is refused. */
  for (tries = 0; tries < 13 && !limited; tries++) {
    r = ask_code(client, EMAIL);
    limited = polar_license_portal_result_error(r) == POLAR_LICENSE_PORTAL_ERROR_RATE_LIMITED;
    if (!limited) {
      expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
      polar_license_portal_result_free(r);
    }
  }
  CHECK(limited);
  CHECK_INT(tries, 7);
  if (limited) {
    expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_RATE_LIMITED, "rate_limited");
    CHECK_INT(polar_license_portal_result_reason(r), POLAR_LICENSE_REASON_RATE_LIMITED);
    CHECK(polar_license_portal_result_retry_after(r, &wait));
    CHECK(wait > 0 && wait <= 900);
    polar_license_portal_result_free(r);
  }
  /* Signing in from the blocked address is refused the same way. */
  r = sign_in_with(client, "ABC123");
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_RATE_LIMITED, "rate_limited");
  polar_license_portal_result_free(r);

  client_done(client, dir);
  emu_stop_private(pid);
}

static void nulls_and_bad_utf8_are_typed(void) {
  char dir[64];
  const char bad[] = {(char)0xff, 'x', 0};
  polar_license_client *client;
  polar_license_portal_result *r = NULL;
  polar_license_result *a = NULL;
  uint64_t wait = 7;
  int64_t limit = 7;

  temp_dir(dir);
  client = client_of(demo_config(emu_url(), dir));
  CHECK_INT(polar_license_client_request_sign_in_code(NULL, EMAIL, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_request_sign_in_code(client, NULL, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_STR(polar_license_client_last_error(client), "email is NULL");
  CHECK_INT(polar_license_client_request_sign_in_code(client, bad, NULL, &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_request_sign_in_code(client, EMAIL, bad, &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_STR(polar_license_client_last_error(client), "customer_id is not valid UTF-8");
  CHECK_INT(polar_license_client_request_sign_in_code(client, EMAIL, NULL, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_sign_in(client, NULL, &r), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_sign_in(client, bad, &r), POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_sign_in(client, "ABC123", NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_list_devices(client, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_list_devices(client, bad, &r), POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_list_devices(NULL, DEMO_KEY, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_list_devices(client, DEMO_KEY, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_free_device(client, DEMO_KEY, NULL, &a),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_STR(polar_license_client_last_error(client), "activation_id is NULL");
  CHECK_INT(polar_license_client_free_device(client, bad, "x", &a),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_free_device(client, DEMO_KEY, "x", NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  /* Nothing was written by any refused call. */
  CHECK(r == NULL);
  CHECK(a == NULL);
  /* A bad device id is typed, unsent. */
  must(polar_license_client_free_device(client, DEMO_KEY, "not-a-uuid", &a));
  CHECK_INVALID(a, "activation_id");
  polar_license_result_free(a);
  /* NULL results read as neutral values; NULL frees and sign-outs do nothing. */
  CHECK_INT(polar_license_portal_result_error(NULL), POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT);
  CHECK_STR(polar_license_portal_result_code(NULL), "");
  CHECK_STR(polar_license_portal_result_message(NULL), "");
  CHECK_INT(polar_license_portal_result_reason(NULL), POLAR_LICENSE_REASON_NONE);
  CHECK(!polar_license_portal_result_retry_after(NULL, &wait));
  CHECK_INT(wait, 7);
  CHECK(!polar_license_portal_result_limit_activations(NULL, &limit));
  CHECK_INT(limit, 7);
  CHECK_INT(polar_license_portal_result_device_count(NULL), 0);
  CHECK_STR(polar_license_portal_result_device_id(NULL, 0), "");
  CHECK_INT(polar_license_portal_result_customer_count(NULL), 0);
  CHECK_STR(polar_license_portal_result_customer_name(NULL, 0), "");
  CHECK(!polar_license_client_signed_in(NULL));
  polar_license_client_sign_out(NULL);
  polar_license_portal_result_free(NULL);
  client_done(client, dir);
}

/* How many live activations the private emulator holds for `key` (its control route). */
static int emu_activation_count(int at, const char *key) {
  static char body[65536];
  char path[160];
  const char *p;
  int count = 0;
  snprintf(path, sizeof path, "/__emulator/keys/%s/activations", key);
  if (emu_request_at(at, "GET", path, NULL, body, sizeof body) != 200) {
    CHECK(!"the activations route answered");
    return -1;
  }
  for (p = strstr(body, "\"label\""); p != NULL; p = strstr(p + 1, "\"label\"")) count++;
  return count;
}

/* Key recovery ("I lost my key", issue #64 item 3): the signed-in customer's keys this machine
 * can activate, by id and display form only (never the whole key; revoked and expired ones not
 * offered), one activated here by its id and remembered, so the app checks it without the key;
 * not signed in and an id that is none of them typed, nothing activated. */
static void recover_a_lost_key(void) {
  int pid;
  char dir[64];
  polar_license_config *config;
  polar_license_client *here;
  polar_license_portal_result *r = NULL;
  polar_license_result *a = NULL;
  size_t i, n;
  long demo = -1;
  int64_t expires = 7;
  char demo_id[64];

  private_start(&pid);
  temp_dir(dir);
  config = demo_config(url, dir);
  must(polar_license_config_set_remember_keys(config, true));
  here = client_of(config);

  /* Not signed in: typed, nothing sent, nothing activated. */
  must(polar_license_client_recoverable_keys(here, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NOT_SIGNED_IN, "not_signed_in");
  CHECK_INT(polar_license_portal_result_key_count(r), 0);
  polar_license_portal_result_free(r);
  must(polar_license_client_recover(here, "0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b", "This laptop",
                                    &a));
  CHECK_INVALID(a, "session");
  polar_license_result_free(a);

  sign_in(here);
  must(polar_license_client_recoverable_keys(here, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  n = polar_license_portal_result_key_count(r);
  CHECK(n >= 1);
  for (i = 0; i < n; i++) {
    const char *shown = polar_license_portal_result_key_display(r, i);
    CHECK(strncmp(shown, "****-", 5) == 0);
    CHECK(strstr(shown, "DEMO-") == NULL);
    /* The revoked and the expired demo keys are not offered. */
    CHECK(strcmp(shown, "****-2B3C4D") != 0);
    CHECK(strcmp(shown, "****-635445") != 0);
    if (strcmp(shown, "****-4C5B6A") == 0) demo = (long)i;
  }
  CHECK(demo >= 0);
  if (demo < 0) {
    polar_license_portal_result_free(r);
    client_done(here, dir);
    emu_stop_private(pid);
    return;
  }
  snprintf(demo_id, sizeof demo_id, "%s", polar_license_portal_result_key_id(r, (size_t)demo));
  CHECK(strlen(demo_id) == 36);
  CHECK(!polar_license_portal_result_key_expires_at(r, (size_t)demo, &expires));
  CHECK_INT(expires, 7);
  CHECK_STR(polar_license_portal_result_key_id(r, n), "");
  CHECK_STR(polar_license_portal_result_key_display(r, n), "");
  polar_license_portal_result_free(r);

  /* An id that is none of them: typed, nothing activated. */
  must(polar_license_client_recover(here, "0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b", "This laptop",
                                    &a));
  CHECK_INVALID(a, "key_id");
  polar_license_result_free(a);
  CHECK_INT(emu_activation_count(port, DEMO_KEY), 0);

  /* The demo key by its id: activated here, and remembered. */
  must(polar_license_client_recover(here, demo_id, "This laptop", &a));
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK(polar_license_result_activation_id(a)[0] != '\0');
  polar_license_result_free(a);
  CHECK_INT(emu_activation_count(port, DEMO_KEY), 1);
  must(polar_license_client_check_remembered(here, &a));
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(a);
  /* NULLs: typed, nothing written. */
  CHECK_INT(polar_license_client_recover(here, NULL, "x", &a), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_recover(here, demo_id, "x", NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_recoverable_keys(NULL, &r), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_portal_result_key_count(NULL), 0);
  CHECK_STR(polar_license_portal_result_key_id(NULL, 0), "");

  client_done(here, dir);
  emu_stop_private(pid);
}

/* A rotated key (issue #64 item 4): rotated at Polar, its old string not_found; followed
 * through the session to its new string with this machine's activation (no slot taken), the
 * new key remembered in the old one's place; no session, a key not rotated (KEY_NOT_FOUND), a
 * key with nothing cached here (INVALID_INPUT) and NULLs / bad UTF-8 typed. */
static void follow_a_rotated_key(void) {
  int pid;
  char dir[64], mine[64], path[160], new_key[128];
  static char body[4096];
  const char bad[] = {(char)0xff, 'x', 0};
  const char *at;
  polar_license_config *config;
  polar_license_client *here;
  polar_license_portal_result *r = NULL;
  polar_license_result *a = NULL;

  private_start(&pid);
  temp_dir(dir);
  config = demo_config(url, dir);
  must(polar_license_config_set_remember_keys(config, true));
  here = client_of(config);
  activated(here, DEMO_KEY, "This laptop", mine);

  /* NULLs and bad UTF-8: refused, nothing written. */
  CHECK_INT(polar_license_client_follow_rotation(NULL, DEMO_KEY, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_follow_rotation(here, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_STR(polar_license_client_last_error(here), "old_key is NULL");
  CHECK_INT(polar_license_client_follow_rotation(here, bad, &r), POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_STR(polar_license_client_last_error(here), "old_key is not valid UTF-8");
  CHECK_INT(polar_license_client_follow_rotation(here, DEMO_KEY, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);
  CHECK_STR(polar_license_portal_result_new_key(NULL), "");
  CHECK_STR(polar_license_portal_result_display_key(NULL), "");
  CHECK_STR(polar_license_portal_result_activation_id(NULL), "");

  /* Not signed in: typed, nothing sent. */
  must(polar_license_client_follow_rotation(here, DEMO_KEY, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NOT_SIGNED_IN, "not_signed_in");
  CHECK_STR(polar_license_portal_result_new_key(r), "");
  polar_license_portal_result_free(r);

  sign_in(here);
  /* Not rotated: the customer's key still has this string. */
  must(polar_license_client_follow_rotation(here, DEMO_KEY, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_KEY_NOT_FOUND, "key_not_found");
  polar_license_portal_result_free(r);
  /* A key with nothing cached here: no record id to follow. */
  must(polar_license_client_follow_rotation(here, "DEMO-NOTHING-CACHED-HERE-000000", &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input");
  polar_license_portal_result_free(r);

  /* Rotated at Polar: the old string is not_found at once. */
  snprintf(path, sizeof path, "/__emulator/keys/%s/rotate", DEMO_KEY);
  CHECK_INT(emu_request_at(port, "POST", path, "", body, sizeof body), 200);
  at = strstr(body, "\"key\":\"");
  CHECK(at != NULL);
  if (at == NULL) at = "\"key\":\"\"";
  snprintf(new_key, sizeof new_key, "%s", at + 7);
  new_key[strcspn(new_key, "\"")] = '\0';
  {
    polar_license_request *req = new_request(DEMO_KEY);
    must(polar_license_client_validate(here, req, &a));
    polar_license_request_free(req);
  }
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  polar_license_result_free(a);

  must(polar_license_client_follow_rotation(here, DEMO_KEY, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  CHECK_STR(polar_license_portal_result_new_key(r), new_key);
  CHECK_STR(polar_license_portal_result_activation_id(r), mine);
  CHECK(strncmp(polar_license_portal_result_display_key(r), "****-", 5) == 0);
  CHECK(strstr(polar_license_portal_result_display_key(r), new_key) == NULL);
  polar_license_portal_result_free(r);
  /* The same activation, still the key's only one; the new key remembered. */
  CHECK_INT(emu_activation_count(port, new_key), 1);
  must(polar_license_client_check_remembered(here, &a));
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(a), mine);
  polar_license_result_free(a);
  /* The old record is forgotten: nothing to follow any more. */
  must(polar_license_client_follow_rotation(here, DEMO_KEY, &r));
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input");
  polar_license_portal_result_free(r);

  client_done(here, dir);
  emu_stop_private(pid);
}

/* The seller's relay (`polar-license relay serve`) in front of the private emulator, on a port
 * of its own, its signing key made by `relay keygen` in `dir`: its process for proc_end (its
 * port in `relay_port`). */
static intptr_t relay_start(const char *dir, int *relay_port) {
  const char *cli = getenv("POLAR_LICENSE_CLI");
  char key[128], port_text[16];
  const char *keygen[] = {NULL, "relay", "keygen", "--out", key, NULL};
  const char *serve[] = {NULL, "--base-url", url, "relay", "serve", "--signing-key", key,
                         "--port", port_text, NULL};
  intptr_t relay;
  int i;
  *relay_port = closed_port();
  snprintf(port_text, sizeof port_text, "%d", *relay_port);
  snprintf(key, sizeof key, "%s/relay.key", dir);
  if (cli == NULL || cli[0] == '\0') {
    CHECK(!"POLAR_LICENSE_CLI is set");
    return -1;
  }
  keygen[0] = cli;
  serve[0] = cli;
  CHECK_INT(proc_run(keygen), 0);
  /* The token through the environment: it stays out of the process list. */
  relay = proc_start(serve, NULL, "POLAR_ACCESS_TOKEN",
                     "polar_oat_emulator_demo_0123456789abcdef");
  CHECK(relay != -1);
  if (relay == -1) return -1;
  /* A bounded wait for it to answer (at most 10 s), not a timing assertion. */
  for (i = 0; i < 500; i++) {
    if (emu_request_at(*relay_port, "GET", "/healthz", NULL, NULL, 0) == 200) return relay;
    pause_ms(20);
  }
  CHECK(!"the relay started");
  return relay;
}

static polar_license_portal_result *list_via(polar_license_client *client, const char *relay,
                                             const char *key) {
  polar_license_portal_result *r = NULL;
  must(polar_license_client_list_devices_via_relay(client, relay, key, &r));
  return r;
}

/* Out of activations with no sign-in: the seller's relay lists the key's devices (the key
 * proves it is the customer's; no email code), this machine marked; a key Polar does not know
 * is KEY_NOT_FOUND, a relay URL that is no base URL INVALID_INPUT, NULLs NULL_ARGUMENT. */
static void list_through_the_relay_without_a_session(void) {
  int pid, relay_port;
  intptr_t relay_proc;
  char old_dir[64], here_dir[64], keys_dir[64], relay[64], old_id[64], here_id[64];
  polar_license_client *old, *here;
  polar_license_portal_result *r;
  long i;

  private_start(&pid);
  temp_dir(keys_dir);
  relay_proc = relay_start(keys_dir, &relay_port);
  snprintf(relay, sizeof relay, "http://127.0.0.1:%d", relay_port);
  old = client_in(old_dir);
  here = client_in(here_dir);
  activated(old, DEMO_KEY, "Old laptop", old_id);
  activated(here, DEMO_KEY, "This laptop", here_id);
  CHECK(!polar_license_client_signed_in(here));

  r = list_via(here, relay, DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_NONE, "");
  CHECK_INT((long long)polar_license_portal_result_device_count(r), 2);
  i = device_index(r, here_id);
  CHECK(i == 1);
  if (i >= 0) {
    CHECK(polar_license_portal_result_device_this_machine(r, (size_t)i));
    CHECK_STR(polar_license_portal_result_device_label(r, (size_t)i), "This laptop");
  }
  i = device_index(r, old_id);
  CHECK(i == 0);
  if (i >= 0) CHECK(!polar_license_portal_result_device_this_machine(r, (size_t)i));
  polar_license_portal_result_free(r);

  r = list_via(here, relay, "NOT-A-REAL-KEY-1");
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_KEY_NOT_FOUND, "key_not_found");
  polar_license_portal_result_free(r);
  r = list_via(here, "http://relay.example.com", DEMO_KEY);
  expect_portal(r, POLAR_LICENSE_PORTAL_ERROR_INVALID_INPUT, "invalid_input");
  polar_license_portal_result_free(r);
  r = NULL;
  CHECK_INT(polar_license_client_list_devices_via_relay(here, NULL, DEMO_KEY, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);

  client_done(old, old_dir);
  client_done(here, here_dir);
  proc_end(relay_proc, 0);
  remove_tree(keys_dir);
  emu_stop_private(pid);
}

/* Self-healing activations (issue #80): a reinstall on the same machine (a new cache) at the
 * activation limit, signed in, ends licensed with the activation the machine already holds
 * (found by the fingerprint its meta records) and takes none; a new machine at the limit is
 * refused as before and sees the other machine's row told apart (not this machine's; its
 * label and platform). */
static void a_reinstall_at_the_limit_reclaims_its_own_activation(void) {
  int pid;
  char first_dir[64], again_dir[64], other_dir[64], key[64], body[256], id[64];
  polar_license_client *first, *again, *other;
  polar_license_portal_result *r;
  polar_license_result *a;

  private_start(&pid);
  snprintf(key, sizeof key, "CTEST-HEAL-%ld", (long)rand());
  snprintf(body, sizeof body,
           "{\"key\":\"%s\",\"benefit_id\":\"" DEMO_BENEFIT "\",\"customer_id\":\"" DEMO_CUSTOMER
           "\",\"limit_activations\":1}",
           key);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/keys", body, NULL, 0), 201);
  first = client_on("machine-A", first_dir);
  activated(first, key, "Jane's laptop", id);
  CHECK_INT(emu_activation_count(port, key), 1);

  /* The reinstall: the same machine, a new cache, signed in. Licensed, the same activation. */
  again = client_on("machine-A", again_dir);
  sign_in(again);
  a = activate_labeled(again, key, "Jane's laptop");
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(a), id);
  polar_license_result_free(a);
  CHECK_INT(emu_activation_count(port, key), 1);
  EXPECT_CHECK(again, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  r = list(again, key);
  CHECK_INT((long long)polar_license_portal_result_device_count(r), 1);
  CHECK(polar_license_portal_result_device_this_machine(r, 0));
  polar_license_portal_result_free(r);

  /* A new machine at the limit: refused, and the rows told apart. */
  other = client_on("machine-B", other_dir);
  sign_in(other);
  a = activate_labeled(other, key, "Office desktop");
  CHECK_ANSWER(a, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_ACTIVATION_LIMIT);
  polar_license_result_free(a);
  CHECK_INT(emu_activation_count(port, key), 1);
  r = list(other, key);
  CHECK_INT((long long)polar_license_portal_result_device_count(r), 1);
  CHECK(!polar_license_portal_result_device_this_machine(r, 0));
  CHECK_STR(polar_license_portal_result_device_label(r, 0), "Jane's laptop");
  CHECK(strchr(polar_license_portal_result_device_platform(r, 0), '/') != NULL);
  CHECK_INT(polar_license_portal_result_device_last_seen(r, 0), -1);
  CHECK_STR(polar_license_portal_result_device_platform(r, 9), "");
  polar_license_portal_result_free(r);

  client_done(first, first_dir);
  client_done(again, again_dir);
  client_done(other, other_dir);
  emu_stop_private(pid);
}

int main(void) {
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  RUN(nulls_and_bad_utf8_are_typed);
  RUN(sign_in_list_free_another_and_activate_here);
  RUN(device_management_off_expired_session_and_bad_input);
  RUN(the_code_routes_rate_limit_with_the_wait);
  RUN(recover_a_lost_key);
  RUN(follow_a_rotated_key);
  RUN(list_through_the_relay_without_a_session);
  RUN(a_reinstall_at_the_limit_reclaims_its_own_activation);
  return harness_summary("test_devices");
}
