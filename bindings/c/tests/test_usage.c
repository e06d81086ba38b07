/*
 * test_usage.c: usage reports from C (issue #68 item 3) through the real relay
 * (`polar-license relay serve --store memory --record-usage --sign-entitlements
 * --refuse-at-zero-credits`, a process) in front of a private emulator (a process) seeded with a
 * meter credit benefit of 10 units: a report recorded with its id; the same id sent again is a
 * duplicate, counted once (the balance the relay reads from Polar's meter after it shows one
 * count); reports down to zero, then CREDITS_EXHAUSTED with the balance; a key Polar does not know
 * is its denial; empty meters, zero, negative, NaN and infinite units and bad ids refused before
 * anything is sent; NULLs and bad UTF-8 refused; the relay gone is OFFLINE with the id to send
 * again; a report the relay's backlog holds (a second relay whose token cannot write events, so
 * nothing is ingested: its 100 waiting reports of a key fill it) is BACKLOG with the core's code,
 * `usage_backlog`, and the relay's Retry-After.
 *
 * Needs POLAR_EMULATOR_URL (unused but checked, as every C test) and POLAR_LICENSE_CLI. POSIX
 * only (the emulator and the relay are forked processes).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define EMU_TOKEN "polar_oat_emulator_demo_0123456789abcdef"
#define LICENSE "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d"
#define CREDIT "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a"
#define TOKENS "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
#define CUSTOMER "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"
#define USE_KEY "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E"
#define METER "tokens_used"
/* A token without `events:write` (the second relay's: it cannot ingest) and its key. */
#define NO_EVENTS_TOKEN "polar_oat_emulator_noevents_0123456789ab"
#define HELD_KEY "USE-HELD-0F1A-4B2C-9D3E-4F5A6B7C8D9E"

static char dir[64];
static char key_file[128];
static pid_t emu_pid, relay_pid, held_pid;
static char polar_url[128], relay_url[128], held_url[128];
/* The token the next served process gets. */
static const char *serve_token = EMU_TOKEN;

static void fatal(const char *what) {
  fprintf(stderr, "fatal: %s\n", what);
  exit(2);
}

/* |a| without libm (the test links none). */
static double distance(double a) { return a < 0 ? -a : a; }

/* Forks `argv` with its stdout to `log` and POLAR_ACCESS_TOKEN set; waits (10 s at most) for its
 * first line, `listening on URL`, and writes URL into `url`. */
static pid_t serve(char *const argv[], const char *log, char url[128]) {
  int i;
  pid_t pid = fork();
  if (pid < 0) fatal("fork");
  if (pid == 0) {
    if (freopen(log, "w", stdout) == NULL) _exit(126);
    if (freopen("/dev/null", "w", stderr) == NULL) _exit(126);
    if (setenv("POLAR_ACCESS_TOKEN", serve_token, 1) != 0) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  url[0] = '\0';
  for (i = 0; i < 500 && url[0] == '\0'; i++) {
    char line[128] = "";
    FILE *f = fopen(log, "r");
    if (f != NULL) {
      if (fgets(line, sizeof line, f) != NULL && strncmp(line, "listening on ", 13) == 0 &&
          strchr(line, '\n') != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(url, 128, "%s", line + 13);
      }
      fclose(f);
    }
    if (url[0] == '\0') pause_ms(20);
  }
  if (url[0] == '\0') {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fatal(argv[1]);
  }
  return pid;
}

static void stop(pid_t *pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGTERM);
  waitpid(*pid, NULL, 0);
  *pid = 0;
}

static void start_all(void) {
  char *cli = getenv("POLAR_LICENSE_CLI");
  char seed_file[128], emu_log[128], relay_log[128], command[512], line[256];
  FILE *f, *pipe;
  if (cli == NULL || cli[0] == '\0') fatal("set POLAR_LICENSE_CLI");
  snprintf(seed_file, sizeof seed_file, "%s/seed.json", dir);
  f = fopen(seed_file, "w");
  if (f == NULL) fatal("the seed file");
  fprintf(f,
          "{\"organization_id\":\"" DEMO_ORG "\","
          "\"access_tokens\":[{\"token\":\"" EMU_TOKEN "\"},"
          "{\"token\":\"" NO_EVENTS_TOKEN
          "\",\"scopes\":[\"license_keys:read\",\"license_keys:write\"]}],"
          "\"meters\":[{\"id\":\"" TOKENS "\",\"name\":\"Tokens\",\"event_name\":\"" METER
          "\",\"aggregation\":{\"func\":\"sum\",\"property\":\"units\"}}],"
          "\"benefits\":[{\"id\":\"" CREDIT "\",\"type\":\"meter_credit\",\"meter_id\":\"" TOKENS
          "\",\"units\":10}],"
          "\"license_keys\":[{\"key\":\"" USE_KEY "\",\"benefit_id\":\"" LICENSE
          "\",\"customer_id\":\"" CUSTOMER
          "\",\"subscription\":{\"id\":\"9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b\"},"
          "\"benefits\":[\"" CREDIT "\"]},"
          "{\"key\":\"" HELD_KEY "\",\"customer_id\":\"" CUSTOMER "\"}]}");
  fclose(f);
  snprintf(emu_log, sizeof emu_log, "%s/emulator.log", dir);
  {
    char *argv[] = {cli, "emulator", "--port", "0", "--seed", seed_file, NULL};
    emu_pid = serve(argv, emu_log, polar_url);
  }
  snprintf(key_file, sizeof key_file, "%s/relay.key", dir);
  snprintf(command, sizeof command, "'%s' relay keygen --out '%s' 2>/dev/null", cli, key_file);
  pipe = popen(command, "r");
  if (pipe == NULL || fgets(line, sizeof line, pipe) == NULL) fatal("polar-license relay keygen");
  while (fgetc(pipe) != EOF) {
  }
  if (pclose(pipe) != 0) fatal("polar-license relay keygen");
  snprintf(relay_log, sizeof relay_log, "%s/relay.log", dir);
  {
    char *argv[] = {cli,          "--base-url",  polar_url,       "relay",
                    "serve",      "--signing-key", key_file,      "--port",
                    "0",          "--store",     "memory",        "--per-ip",
                    "0",          "--per-key",   "0",             "--record-usage",
                    "--sign-entitlements",       "--refuse-at-zero-credits", NULL};
    relay_pid = serve(argv, relay_log, relay_url);
  }
  snprintf(relay_log, sizeof relay_log, "%s/held.log", dir);
  {
    char *argv[] = {cli,       "--base-url", polar_url,  "relay",   "serve",
                    "--signing-key", key_file, "--port", "0",       "--store",
                    "memory",  "--per-ip",   "0",        "--per-key", "0",
                    "--record-usage", NULL};
    serve_token = NO_EVENTS_TOKEN;
    held_pid = serve(argv, relay_log, held_url);
    serve_token = EMU_TOKEN;
  }
}

/* A client of the demo organization whose base URL is `url`. */
static polar_license_client *client_at(const char *url, char cache[64]) {
  temp_dir(cache);
  return client_of(demo_config(url, cache));
}

/* A report that must return OK. */
static polar_license_usage_result *report(polar_license_client *client, const char *key,
                                          const char *meter, double units, const char *id) {
  polar_license_usage_result *r = NULL;
  CHECK_INT(polar_license_client_record_usage(client, key, meter, units, id, &r),
            POLAR_LICENSE_STATUS_OK);
  if (r == NULL) fatal("no usage result");
  return r;
}

#define CHECK_USAGE_ERROR(r, want) CHECK_FACE_ERROR(usage, r, want)

static void a_report_once_then_down_to_zero_then_credits_exhausted(void) {
  char cache[64];
  polar_license_client *client = client_at(relay_url, cache);
  polar_license_usage_result *r;
  double balance = 99, used;
  uint64_t wait = 0;
  int n;
  /* A report with the app's own id: recorded, not a duplicate, its id as given. */
  r = report(client, USE_KEY, METER, 2, "c-report-1");
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_NONE);
  CHECK(!polar_license_usage_result_duplicate(r));
  CHECK_STR(polar_license_usage_result_id(r), "c-report-1");
  CHECK_INT(polar_license_usage_result_reason(r), POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_usage_result_code(r), "");
  CHECK(!polar_license_usage_result_retry_after(r, &wait));
  polar_license_usage_result_free(r);
  /* The same id again (a retry of the app's): a duplicate, counted once. */
  r = report(client, USE_KEY, METER, 2, "c-report-1");
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_NONE);
  CHECK(polar_license_usage_result_duplicate(r));
  polar_license_usage_result_free(r);
  used = 2;
  /* Reports of 1 (new ids, made by the core: 36 characters) until the relay has read Polar's
   * meter: its balance then counts the first report once, not twice. */
  for (n = 0; n < 100; n++) {
    bool known;
    r = report(client, USE_KEY, METER, 1, NULL);
    CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_NONE);
    CHECK_INT((long long)strlen(polar_license_usage_result_id(r)), 36);
    used += 1;
    known = polar_license_usage_result_balance(r, &balance);
    polar_license_usage_result_free(r);
    if (known) break;
    pause_ms(100);
  }
  CHECK(n < 100);
  CHECK(distance(balance - (10 - used)) < 1e-9);
  if (distance(balance - (10 - used)) >= 1e-9)
    fprintf(stderr, "  balance %g, want %g (the duplicate counted?)\n", balance, 10 - used);
  /* Down to zero (a report crossing zero is kept: the usage happened). */
  while (used < 10) {
    r = report(client, USE_KEY, METER, 3, NULL);
    CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_NONE);
    used += 3;
    CHECK(polar_license_usage_result_balance(r, &balance));
    CHECK(distance(balance - (10 - used)) < 1e-9);
    polar_license_usage_result_free(r);
  }
  /* At or below zero: the seller's rule refuses it, typed, with the balance. */
  r = report(client, USE_KEY, METER, 1, NULL);
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_CREDITS_EXHAUSTED);
  CHECK_INT(polar_license_usage_result_reason(r), POLAR_LICENSE_REASON_CREDITS_EXHAUSTED);
  CHECK_STR(polar_license_usage_result_code(r), "credits_exhausted");
  CHECK(polar_license_usage_result_balance(r, &balance));
  CHECK(distance(balance - (10 - used)) < 1e-9);
  polar_license_usage_result_free(r);
  /* A key Polar does not know: its denial. */
  r = report(client, "USE-NOT-A-KEY-AT-ALL", METER, 1, NULL);
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_DENIED);
  CHECK_INT(polar_license_usage_result_reason(r), POLAR_LICENSE_REASON_NOT_FOUND);
  polar_license_usage_result_free(r);
  polar_license_client_free(client);
  remove_tree(cache);
}

static void bad_input_is_refused_before_anything_is_sent(void) {
  char cache[64];
  char url[64];
  /* A port nothing listens on: a request sent would be OFFLINE; these are INVALID_INPUT. */
  polar_license_client *client;
  polar_license_usage_result *r = NULL;
  static const struct {
    const char *meter;
    double units;
    const char *id;
    const char *field;
  } bad[] = {
      {"", 1, NULL, "meter"},
      {"tab\there", 1, NULL, "meter"},
      {METER, 0, NULL, "units"},
      {METER, -1, NULL, "units"},
      {METER, 1e10, NULL, "units"},
      {METER, 1, "a b", "id"},
      {METER, 1, "", "id"},
  };
  double odd[] = {NAN, INFINITY, -INFINITY};
  size_t i;
  snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
  client = client_at(url, cache);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = report(client, USE_KEY, bad[i].meter, bad[i].units, bad[i].id);
    CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_INVALID_INPUT);
    CHECK_INT(polar_license_usage_result_reason(r), POLAR_LICENSE_REASON_INVALID_INPUT);
    CHECK(strstr(polar_license_usage_result_message(r), bad[i].field) != NULL);
    polar_license_usage_result_free(r);
  }
  for (i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    r = report(client, USE_KEY, METER, odd[i], NULL);
    CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_INVALID_INPUT);
    CHECK(strstr(polar_license_usage_result_message(r), "units") != NULL);
    polar_license_usage_result_free(r);
  }
  /* NULLs and bad UTF-8: the call refused, nothing written. */
  r = NULL;
  CHECK_INT(polar_license_client_record_usage(client, NULL, METER, 1, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(strstr(polar_license_client_last_error(client), "key") != NULL);
  CHECK_INT(polar_license_client_record_usage(client, USE_KEY, NULL, 1, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(strstr(polar_license_client_last_error(client), "meter") != NULL);
  CHECK_INT(polar_license_client_record_usage(client, USE_KEY, METER, 1, NULL, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_record_usage(client, USE_KEY, "m\xff", 1, NULL, &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_record_usage(client, USE_KEY, METER, 1, "\xc3(", &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_record_usage(NULL, USE_KEY, METER, 1, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);
  /* A NULL result reads as nothing. */
  CHECK_INT(polar_license_usage_result_error(NULL), POLAR_LICENSE_USAGE_ERROR_INVALID_INPUT);
  CHECK_STR(polar_license_usage_result_id(NULL), "");
  CHECK(!polar_license_usage_result_duplicate(NULL));
  polar_license_usage_result_free(NULL);
  /* A good report to the closed port: sent (three times, the same id), OFFLINE, its id kept
   * for the app to send again. */
  r = report(client, USE_KEY, METER, 1, NULL);
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_OFFLINE);
  CHECK_INT(polar_license_usage_result_reason(r), POLAR_LICENSE_REASON_OFFLINE);
  CHECK_INT((long long)strlen(polar_license_usage_result_id(r)), 36);
  polar_license_usage_result_free(r);
  polar_license_client_free(client);
  remove_tree(cache);
}

/* The relay's backlog: nothing is ingested (its token cannot write events), so a key's 100
 * waiting reports fill it; the next is BACKLOG, the core's code `usage_backlog`, the relay's
 * Retry-After, its id to send again. */
static void a_report_the_relays_backlog_holds_is_usage_backlog(void) {
  char cache[64];
  polar_license_client *client = client_at(held_url, cache);
  polar_license_usage_result *r;
  uint64_t wait = 0;
  int n;
  for (n = 0; n < 100; n++) {
    r = report(client, HELD_KEY, METER, 1, NULL);
    CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_NONE);
    polar_license_usage_result_free(r);
  }
  r = report(client, HELD_KEY, METER, 1, "c-held-101");
  CHECK_USAGE_ERROR(r, POLAR_LICENSE_USAGE_ERROR_BACKLOG);
  CHECK_STR(polar_license_usage_result_code(r), "usage_backlog");
  CHECK_STR(polar_license_usage_result_id(r), "c-held-101");
  CHECK(polar_license_usage_result_retry_after(r, &wait));
  CHECK_INT((long long)wait, 60);
  polar_license_usage_result_free(r);
  polar_license_client_free(client);
  remove_tree(cache);
}

int main(void) {
  emu_url();
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  temp_dir(dir);
  start_all();
  RUN(a_report_once_then_down_to_zero_then_credits_exhausted);
  RUN(bad_input_is_refused_before_anything_is_sent);
  RUN(a_report_the_relays_backlog_holds_is_usage_backlog);
  stop(&held_pid);
  stop(&relay_pid);
  stop(&emu_pid);
  remove_tree(dir);
  return harness_summary("test_usage");
}
