/*
 * test_signed.c: signed mode and air-gapped activation (issue #25) through the C API.
 *
 * Bad relay keys and NULLs are clear errors; a record without a lease never licenses offline
 * in signed mode; through the real relay (`polar-license relay serve`, a process in front of
 * the emulator): activate, then with the relay gone the cache licenses within the lease and
 * not after it (the test-only clock offset); the forged-record attack (a re-sealed record,
 * made by polar-license-forge-c with the secrets on this machine and the crate's own code)
 * licenses an app without relay keys and not one with them; air-gapped request -> fetch ->
 * install, a damaged or misplaced response line storing nothing.
 *
 * signed_mode_rows plays the rows every face plays (tests/signed/rows.tsv, read at run time
 * from POLAR_SIGNED_ROWS or that path under the current directory), the relay a real process
 * signing with its key or with another key under its kid; the tests above it hold what the
 * table does not.
 *
 * Issue #53 (POSIX only: the proxy is a forked process, the race forks the second process): a
 * recording proxy between the app and the relay (polar-license-tape, crates/testkit) replays
 * the relay's earlier 200 after a recorded denial and after a clock set back: refused as
 * `replayed`, the denial and the rollback evidence kept, a fresh grant licensing; and the
 * late-grant race, two processes on one cache, one's grant held by the proxy while the other
 * records a denial: it ends denied.
 *
 * Issue #62 (POSIX only, the same proxy): signed mode trusts only signed facts. The proxy's
 * forged, unsigned `404 "License key has expired."` never makes a revoked key a perpetual
 * fallback of a signed app (online, offline, 40 days later; the denial kept), while an app
 * without relay keys believes it; an unsigned `subscription` injected into the relay's genuine
 * grant never makes Polar's later "no longer active" a fallback.
 *
 * Needs POLAR_EMULATOR_URL, POLAR_LICENSE_CLI (the polar-license binary, with `relay`),
 * POLAR_LICENSE_FORGE_C (the polar-license-forge-c binary, bindings/c/forge) and, off Windows,
 * POLAR_LICENSE_TAPE (the polar-license-tape binary, crates/testkit). On Windows (built
 * with MinGW-w64, run under wine by scripts/test-windows.sh) the relay is a process started
 * with CreateProcess and ended with TerminateProcess (harness proc_start, proc_end), and the
 * commands run through cmd.exe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <process.h>
/* How a command line quotes a path, and where it throws output away. */
#define Q "\""
#define DEVNULL "NUL"
#else
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#define Q "'"
#define DEVNULL "/dev/null"
#endif

#include "harness.h"

#define HOUR 3600
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)
#define LEASE_DAYS 3
#define KID "c-relay"
/* The emulator's seed token with every scope (crates/emulator/src/seed.rs, DEMO_TOKEN). */
#define EMU_TOKEN "polar_oat_emulator_demo_0123456789abcdef"
#define APP_SECRET "the C app secret"
/* A PASERK public key from the PASERK test vectors (k4.public), and its sibling. */
#define SOME_PUBLIC "k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8"

static char key_dir[64];             /* the relay's signing key lives here */
static char key_file[128];           /* ... in this file */
static char relay_pair[256];         /* KID=k4.public.... as `relay keygen` printed it */
static char old_pair[256];           /* another key's pair (a key the relay does not use) */
static char impostor_file[128];      /* another key under the relay's kid (the other-key rows) */

static void fatal(const char *what) {
  fprintf(stderr, "fatal: %s\n", what);
  exit(2);
}

static const char *env_or_die(const char *name) {
  const char *value = getenv(name);
  if (value == NULL || value[0] == '\0') {
    fprintf(stderr, "set %s\n", name);
    exit(2);
  }
  return value;
}

/* Runs a shell command, copies its first stdout line (without the newline) into `out` and
 * returns its exit code (-1 when it could not run). */
static int run_line(const char *command, char *out, size_t out_len) {
#ifdef _WIN32
  /* cmd.exe /c drops the first and last quote of a line that starts with one: a pair around the
   * whole line keeps the command's own. */
  char line[1100];
  FILE *pipe;
  snprintf(line, sizeof line, "\"%s\"", command);
  pipe = _popen(line, "r");
#else
  FILE *pipe = popen(command, "r");
#endif
  int status;
  if (out_len > 0) out[0] = '\0';
  if (pipe == NULL) return -1;
  if (out_len > 0 && fgets(out, (int)out_len, pipe) != NULL) out[strcspn(out, "\r\n")] = '\0';
  while (fgetc(pipe) != EOF) {
  }
#ifdef _WIN32
  status = _pclose(pipe);
  return status;
#else
  status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
#endif
}

/* ---- the relay ------------------------------------------------------------------------- */

/* The relay's verdict store for the next relay_start: NULL, none (every check forwarded to
 * Polar); "memory", one in memory. With none, the argument list ends at the first NULL. */
static const char *relay_store = NULL;
/* The key file the next relay_start signs with (NULL: the suite's key, key_file). */
static const char *relay_signing = NULL;
#define SIGNING_KEY (relay_signing != NULL ? relay_signing : key_file)
#define STORE_ARGS (relay_store != NULL ? "--store" : (char *)NULL), relay_store

typedef struct {
  intptr_t pid; /* the harness's process handle (0: not running) */
  char url[64];
  char log[128];
} relay;

/* Starts `polar-license --base-url EMULATOR relay serve` on a free port with the suite's
 * signing key (harness proc_start: its stdout on r->log, the token in its environment, out of
 * the process list); returns once it printed `listening on URL` (at most 10 s). */
static void relay_start(relay *r) {
  char days[16];
  const char *argv[] = {NULL, "--base-url", NULL, "relay", "serve", "--signing-key", NULL,
                        "--port", "0", "--lease-days", days, STORE_ARGS, NULL};
  argv[0] = env_or_die("POLAR_LICENSE_CLI");
  argv[2] = emu_url();
  argv[6] = SIGNING_KEY;
  snprintf(r->log, sizeof r->log, "%s/relay-%d.log", key_dir, rand());
  snprintf(days, sizeof days, "%d", LEASE_DAYS);
  r->pid = proc_start(argv, r->log, "POLAR_ACCESS_TOKEN", EMU_TOKEN);
  if (r->pid == -1) fatal("start the relay (polar-license relay serve)");
  if (!listening_on(r->log, r->url, sizeof r->url)) {
    proc_end(r->pid, 1);
    fatal("the relay did not start (polar-license relay serve)");
  }
}

/* Stops the relay (SIGTERM; Windows terminates it): from now on its address refuses
 * connections (Polar "offline"). */
static void relay_stop(relay *r) {
  if (r->pid <= 0) return;
  proc_end(r->pid, 0);
  r->pid = 0;
  remove(r->log);
}

/* ---- clients --------------------------------------------------------------------------- */

/* A client of the demo organization at `base_url` with its cache in `dir`, the app secret,
 * the clock moved by `offset`, and `relay_key` (NULL: not in signed mode; with a comma, a list
 * for polar_license_config_set_relay_keys). */
static polar_license_client *app(const char *dir, const char *base_url, const char *relay_key,
                                 int64_t offset) {
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  must(polar_license_config_new(&config));
  if (polar_license_config_set_organization(config, DEMO_ORG) != POLAR_LICENSE_STATUS_OK ||
      polar_license_config_set_base_url(config, base_url) != POLAR_LICENSE_STATUS_OK ||
      polar_license_config_set_cache_dir(config, dir) != POLAR_LICENSE_STATUS_OK ||
      polar_license_config_set_timeout_ms(config, 5000) != POLAR_LICENSE_STATUS_OK ||
      polar_license_config_set_app_secret(config, (const uint8_t *)APP_SECRET,
                                          strlen(APP_SECRET)) != POLAR_LICENSE_STATUS_OK ||
      polar_license_config_set_clock_offset_for_testing(config, offset) !=
          POLAR_LICENSE_STATUS_OK ||
      (relay_key != NULL && strchr(relay_key, ',') == NULL &&
       polar_license_config_add_relay_key(config, relay_key) != POLAR_LICENSE_STATUS_OK) ||
      (relay_key != NULL && strchr(relay_key, ',') != NULL &&
       polar_license_config_set_relay_keys(config, relay_key) != POLAR_LICENSE_STATUS_OK) ||
      polar_license_client_new(config, &client) != POLAR_LICENSE_STATUS_OK) {
    fprintf(stderr, "client setup failed: %s\n", polar_license_config_last_error(config));
    fatal("app");
  }
  polar_license_config_free(config);
  return client;
}

/* Checks `key` at `offset` with a fresh client and returns whether it was licensed from the
 * cache (the offline answer); `reason` gets the answer's reason. */
static int licensed_from_cache(const char *dir, const char *base_url, const char *relay_key,
                               int64_t offset, const char *key, polar_license_reason *reason) {
  polar_license_client *client = app(dir, base_url, relay_key, offset);
  polar_license_result *r = check(client, key);
  int yes = polar_license_result_is_licensed(r) &&
            polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE;
  if (reason != NULL) *reason = polar_license_result_reason(r);
  polar_license_result_free(r);
  polar_license_client_free(client);
  return yes;
}

static long long now_seconds(void) { return (long long)time(NULL); }

/* ---- the tests ------------------------------------------------------------------------- */

/* Bad relay keys are refused at once, naming relay_keys, and kept: the client is refused too,
 * so an app that ignores the status never runs unsigned by mistake. NULLs, bad UTF-8. */
static void bad_relay_keys_and_nulls_are_clear_errors(void) {
  static const char *bad[] = {
      "",                                    /* nothing */
      "no-equals-sign",                      /* not KID=PUBLIC */
      "=" SOME_PUBLIC,                       /* an empty kid */
      "kid with space=" SOME_PUBLIC,         /* a kid that is not printable ASCII w/o space */
      "k=k4.public.short",                   /* not a PASERK key */
      "k=k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8", /* not a public key */
      "k=k3.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8", /* another version */
      "a=" SOME_PUBLIC ",b=" SOME_PUBLIC,    /* a list is not one pair */
  };
  const char bad_utf8[] = {'k', '=', (char)0xff, 0};
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  size_t i;

  CHECK_INT(polar_license_config_add_relay_key(NULL, relay_pair),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_config_set_relay_keys(NULL, relay_pair),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    config = demo_config(emu_url(), NULL);
    CHECK_INT(polar_license_config_add_relay_key(config, bad[i]),
              POLAR_LICENSE_STATUS_INVALID_INPUT);
    if (strstr(polar_license_config_last_error(config), "relay_keys") == NULL) {
      fprintf(stderr, "  entry %u: last error: %s\n", (unsigned)i,
              polar_license_config_last_error(config));
      CHECK(!"the last error names relay_keys");
    }
    /* Kept: the client is refused with the same reason, and nothing is written. */
    CHECK_INT(polar_license_client_new(config, &client), POLAR_LICENSE_STATUS_INVALID_INPUT);
    CHECK(client == NULL);
    CHECK(strstr(polar_license_config_last_error(config), "relay_keys") != NULL);
    polar_license_config_free(config);
  }

  config = demo_config(emu_url(), NULL);
  CHECK_INT(polar_license_config_add_relay_key(config, NULL), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_config_set_relay_keys(config, NULL), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_config_add_relay_key(config, bad_utf8), POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_config_set_relay_keys(config, bad_utf8),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  /* Good keys: one pair (spaces around its parts are fine), the same kid twice is refused. */
  CHECK_INT(polar_license_config_add_relay_key(config, relay_pair), POLAR_LICENSE_STATUS_OK);
  CHECK_STR(polar_license_config_last_error(config), "");
  CHECK_INT(polar_license_config_add_relay_key(config, " old = " SOME_PUBLIC " "),
            POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_config_add_relay_key(config, "old=" SOME_PUBLIC),
            POLAR_LICENSE_STATUS_INVALID_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "twice") != NULL);
  CHECK_INT(polar_license_client_new(config, &client), POLAR_LICENSE_STATUS_INVALID_INPUT);
  /* A list replaces everything, refused entries included; "" turns signed mode off. */
  CHECK_INT(polar_license_config_set_relay_keys(config, "k1=" SOME_PUBLIC ", ,bad"),
            POLAR_LICENSE_STATUS_INVALID_INPUT);
  CHECK_INT(polar_license_client_new(config, &client), POLAR_LICENSE_STATUS_INVALID_INPUT);
  CHECK_INT(polar_license_config_set_relay_keys(config, "k1=" SOME_PUBLIC ",k2=" SOME_PUBLIC),
            POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_client_new(config, &client), POLAR_LICENSE_STATUS_OK);
  polar_license_client_free(client);
  client = NULL;
  CHECK_INT(polar_license_config_set_relay_keys(config, ""), POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_client_new(config, &client), POLAR_LICENSE_STATUS_OK);
  polar_license_client_free(client);
  polar_license_config_free(config);

  /* The new accessors on NULL: their "unknown" values. */
  CHECK_STR(polar_license_result_lease_kid(NULL), "");
  CHECK_INT(polar_license_result_lease_expires_at(NULL), -1);
  CHECK_STR(polar_license_result_line(NULL), "");
}

/* The air-gapped calls refuse NULLs and bad UTF-8 with a status and the client's last error;
 * installing needs signed mode. */
static void air_gapped_calls_refuse_bad_arguments(void) {
  char dir[64];
  const char bad_utf8[] = {'p', (char)0xc3, 0};
  polar_license_client *client, *signed_client;
  polar_license_request *request = new_request(DEMO_KEY);
  polar_license_result *r = NULL;
  temp_dir(dir);
  client = app(dir, emu_url(), NULL, 0);
  signed_client = app(dir, emu_url(), relay_pair, 0);

  CHECK_INT(polar_license_client_lease_request(NULL, request, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_request(client, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_STR(polar_license_client_last_error(client), "request is NULL");
  CHECK_INT(polar_license_client_lease_request(client, request, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_fetch(NULL, "x", &r), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_fetch(client, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_STR(polar_license_client_last_error(client), "line is NULL");
  CHECK_INT(polar_license_client_lease_fetch(client, bad_utf8, &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_lease_fetch(client, "x", NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_install(NULL, "x", &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_install(signed_client, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_lease_install(signed_client, bad_utf8, &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_STR(polar_license_client_last_error(signed_client), "line is not valid UTF-8");
  CHECK_INT(polar_license_client_lease_install(signed_client, "x", NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);

  /* A request activate would refuse is refused here, naming its field; nothing is made. */
  must(polar_license_request_set_activation_id(request, OTHER_UUID));
  must(polar_license_client_lease_request(client, request, &r));
  CHECK_INVALID(r, "activation_id");
  CHECK_STR(polar_license_result_line(r), "");
  polar_license_result_free(r);
  r = NULL;

  /* Not a line, and a line installed without relay keys: invalid_input, nothing stored. */
  must(polar_license_client_lease_fetch(client, "hello", &r));
  CHECK_INVALID(r, "request");
  polar_license_result_free(r);
  must(polar_license_client_lease_install(signed_client, "hello", &r));
  CHECK_INVALID(r, "response");
  polar_license_result_free(r);
  must(polar_license_client_lease_install(client, "polar-license-activation-response.v1.e30", &r));
  CHECK_INVALID(r, "relay_keys");
  polar_license_result_free(r);

  polar_license_request_free(request);
  polar_license_client_free(signed_client);
  client_done(client, dir);
}

/* Signed mode (issue #80): the base URL is the seller's relay, which serves no customer
 * portal. A sign-in code asked there is refused; with polar_license_config_set_portal_url
 * pointing at Polar (the emulator) it is sent, while the license stays the relay's. */
static void in_signed_mode_the_portal_url_takes_the_sign_in_to_polar(void) {
  relay rl;
  char dir[64];
  polar_license_config *config = NULL;
  polar_license_client *client;
  polar_license_portal_result *r = NULL;
  relay_start(&rl);
  temp_dir(dir);
  client = app(dir, rl.url, relay_pair, 0);
  must(polar_license_client_request_sign_in_code(client, "jane.doe@gmail.com", NULL, &r));
  CHECK(polar_license_portal_result_error(r) != POLAR_LICENSE_PORTAL_ERROR_NONE);
  polar_license_portal_result_free(r);
  polar_license_client_free(client);

  must(polar_license_config_new(&config));
  must(polar_license_config_set_organization(config, DEMO_ORG));
  must(polar_license_config_set_base_url(config, rl.url));
  must(polar_license_config_set_portal_url(config, emu_url()));
  must(polar_license_config_set_cache_dir(config, dir));
  must(polar_license_config_add_relay_key(config, relay_pair));
  must(polar_license_client_new(config, &client));
  polar_license_config_free(config);
  r = NULL;
  must(polar_license_client_request_sign_in_code(client, "jane.doe@gmail.com", NULL, &r));
  CHECK_INT(polar_license_portal_result_error(r), POLAR_LICENSE_PORTAL_ERROR_NONE);
  polar_license_portal_result_free(r);
  client_done(client, dir);
  relay_stop(&rl);
}

/* A record made without a relay (no lease) licenses an unsigned app offline, never a signed
 * one; its status names no lease. */
static void an_unsigned_record_never_licenses_offline_in_signed_mode(void) {
  char dir[64], key[64], id[64];
  polar_license_client *unsigned_app, *signed_app;
  polar_license_result *r;
  polar_license_reason reason = POLAR_LICENSE_REASON_NONE;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  unsigned_app = app(dir, emu_url(), NULL, 0);
  activate_ok(unsigned_app, key, id);
  r = status(unsigned_app, key);
  CHECK_STR(polar_license_result_lease_kid(r), ""); /* not in signed mode: never a lease */
  polar_license_result_free(r);
  polar_license_client_free(unsigned_app);

  emu_fault("{\"kind\":\"close_immediately\"}");
  CHECK(licensed_from_cache(dir, emu_url(), NULL, DAY, key, &reason));
  CHECK_INT(reason, POLAR_LICENSE_REASON_OFFLINE);
  signed_app = app(dir, emu_url(), relay_pair, DAY);
  r = CHECKED(signed_app, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  CHECK_STR(polar_license_result_lease_kid(r), "");
  CHECK_INT(polar_license_result_lease_expires_at(r), -1);
  polar_license_result_free(r);
  r = status(signed_app, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  CHECK_STR(polar_license_result_lease_kid(r), "");
  CHECK_INT(polar_license_result_lease_expires_at(r), -1);
  CHECK_INT(polar_license_result_grace_remaining_seconds(r), -1);
  polar_license_result_free(r);
  emu_fault(NULL);

  /* Online, Polar's grant without a lease is no verdict in signed mode (protocol_error). */
  r = check(signed_app, key);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  client_done(signed_app, dir);
}

/* Through the real relay: activate and validate carry the lease; then with the relay gone the
 * cache licenses within the lease (its grace capped by it), with two keys at once (rotation)
 * too, not with only a key the relay does not use, and not after the lease, while the 7-day
 * grace alone would. */
static void through_the_relay_the_cache_licenses_within_the_lease_only(void) {
  char dir[64], key[64], id[64];
  relay rl;
  char both[600];
  polar_license_client *client;
  polar_license_result *r;
  polar_license_reason reason = POLAR_LICENSE_REASON_NONE;
  long long ends, before = now_seconds();
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_start(&rl);

  client = app(dir, rl.url, relay_pair, 0);
  activate_ok(client, key, id);
  /* A validate of the activation (this machine's fingerprint sent) carries the lease too. */
  r = validate_activation(client, key, id);
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_ONLINE);
  CHECK_STR(polar_license_result_lease_kid(r), KID);
  CHECK(polar_license_result_lease_expires_at(r) >= before + LEASE_DAYS * DAY);
  polar_license_result_free(r);
  r = status(client, key);
  CHECK_STR(polar_license_result_lease_kid(r), KID);
  ends = polar_license_result_lease_expires_at(r);
  CHECK(ends >= before + LEASE_DAYS * DAY && ends <= now_seconds() + LEASE_DAYS * DAY);
  polar_license_result_free(r);
  /* The activate and check results carry the lease too. */
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_lease_kid(r), KID);
  CHECK_INT(polar_license_result_lease_expires_at(r), ends);
  polar_license_result_free(r);
  polar_license_client_free(client);

  relay_stop(&rl); /* Polar unreachable from here on */

  /* Two days on: licensed from the cache, the grace ending with the lease. */
  client = app(dir, rl.url, relay_pair, 2 * DAY);
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_INT(polar_license_result_grace_ends_at(r), ends);
  CHECK(polar_license_result_grace_remaining_seconds(r) <= ends - (before + 2 * DAY));
  CHECK(polar_license_result_grace_remaining_seconds(r) > ends - (now_seconds() + 2 * DAY) - 5);
  CHECK_STR(polar_license_result_lease_kid(r), KID);
  polar_license_result_free(r);
  polar_license_client_free(client);

  /* Rotation: two keys at once license as the relay's alone; only a key the relay does not
   * sign with is no lease at all. */
  snprintf(both, sizeof both, "%s,%s", old_pair, relay_pair);
  CHECK(licensed_from_cache(dir, rl.url, both, 2 * DAY, key, &reason));
  CHECK_INT(reason, POLAR_LICENSE_REASON_OFFLINE);
  CHECK(!licensed_from_cache(dir, rl.url, old_pair, 2 * DAY, key, &reason));
  CHECK_INT(reason, POLAR_LICENSE_REASON_OFFLINE);

  /* Past the lease: the table's rows (signed_mode_rows). */
  remove_tree(dir);
}

/* Runs polar-license-forge-c on the record of `key` (sealed for `base_url`) in `dir`, as of
 * `offset`; `impostor` adds a year-long lease signed by the forger's own key under the relay's
 * kid. Returns the exit code. */
static int forge(const char *dir, const char *base_url, const char *key, int64_t offset,
                 int impostor) {
  char command[1024], out[256];
  int rc;
  snprintf(command, sizeof command,
           Q "%s" Q " --dir " Q "%s" Q " --base-url " Q "%s" Q " --org " DEMO_ORG " --key " Q "%s" Q
           " --app-secret " Q "%s" Q " --clock-offset %lld%s",
           env_or_die("POLAR_LICENSE_FORGE_C"), dir, base_url, key, APP_SECRET,
           (long long)offset, impostor ? " --impostor-kid " KID : "");
  rc = run_line(command, out, sizeof out);
  if (rc != 0 || strncmp(out, "forged ", 7) != 0) fprintf(stderr, "  forge: exit %d: %s\n", rc, out);
  return rc;
}

/* The "Done when": the key is revoked, the attacker keeps Polar unreachable and, a
 * month on, re-seals the record as freshly verified with the install secret and the app secret
 * read from this machine and the crate's own code. Without relay keys the app grants (the
 * ceiling of every client-side scheme); with them it refuses. A lease forged with the
 * attacker's own key under the relay's kid does not verify either. */
/* A check answered online through the relay says where the relay took Polar's verdict from
 * (contract §5a): asked just now (POLAR), then replayed from its store (STORE); a check
 * straight at Polar, or answered from the cache, names no relay source. */
static void through_the_relay_a_check_says_where_polars_verdict_came_from(void) {
  /* The relay source of each check in turn. */
  static const polar_license_relay_source in_turn[] = {POLAR_LICENSE_RELAY_SOURCE_POLAR,
                                                       POLAR_LICENSE_RELAY_SOURCE_STORE};
  char dir[64], direct_dir[64], key[64], id[64];
  unsigned i;
  relay rl;
  polar_license_config *config = NULL;
  polar_license_client *client = NULL, *cached;
  polar_license_result *r;
  temp_dir(dir);
  temp_dir(direct_dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_store = "memory";
  relay_start(&rl);
  relay_store = NULL;

  /* Every check asks (revalidate after 0 s): the relay answers each one. */
  config = demo_config(rl.url, dir);
  must(polar_license_config_set_app_secret(config, (const uint8_t *)APP_SECRET,
                                           strlen(APP_SECRET)));
  must(polar_license_config_add_relay_key(config, relay_pair));
  must(polar_license_config_set_grace_policy(config, 0, 7 * DAY, 600));
  client = client_of(config);
  activate_ok(client, key, id);

  for (i = 0; i < sizeof in_turn / sizeof in_turn[0]; i++) {
    r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                     POLAR_LICENSE_SOURCE_ONLINE);
    CHECK_INT(polar_license_result_relay_source(r), in_turn[i]);
    polar_license_result_free(r);
  }
  polar_license_client_free(client);

  /* The default policy answers from the cache: no relay said anything. */
  cached = app(dir, rl.url, relay_pair, 0);
  r = check(cached, key);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
  CHECK_INT(polar_license_result_relay_source(r), POLAR_LICENSE_RELAY_SOURCE_NONE);
  polar_license_result_free(r);
  polar_license_client_free(cached);

  /* Straight at Polar: online, no relay source. */
  client = app(direct_dir, emu_url(), NULL, 0);
  r = check(client, key);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  CHECK_INT(polar_license_result_relay_source(r), POLAR_LICENSE_RELAY_SOURCE_NONE);
  polar_license_result_free(r);
  CHECK_INT(polar_license_result_relay_source(NULL), POLAR_LICENSE_RELAY_SOURCE_NONE);
  polar_license_client_free(client);

  relay_stop(&rl);
  remove_tree(dir);
  remove_tree(direct_dir);
}

static void the_forged_record_attack_is_refused_in_signed_mode(void) {
  char dir[64], key[64], id[64];
  relay rl;
  polar_license_client *client;
  polar_license_result *r;
  polar_license_reason reason = POLAR_LICENSE_REASON_NONE;
  const int64_t month = 30 * DAY;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_start(&rl);
  client = app(dir, rl.url, relay_pair, 0);
  activate_ok(client, key, id);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_client_free(client);

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  relay_stop(&rl);

  /* A month on, nothing forged yet: the grace is over for both apps. */
  CHECK(!licensed_from_cache(dir, rl.url, NULL, month, key, &reason));
  CHECK_INT(reason, POLAR_LICENSE_REASON_GRACE_EXPIRED);

  CHECK_INT(forge(dir, rl.url, key, month, 0), 0);
  /* Without relay keys the forged record licenses, as a fresh verdict: not even a request (that
   * it licenses, and that signed mode refuses it, are the table's rows). */
  CHECK(licensed_from_cache(dir, rl.url, NULL, month, key, &reason));
  CHECK_INT(reason, POLAR_LICENSE_REASON_NONE);
  /* In signed mode the lease it reports is the relay's, ended on day 3. */
  client = app(dir, rl.url, relay_pair, month);
  r = check(client, key);
  CHECK(polar_license_result_lease_expires_at(r) < now_seconds() + LEASE_DAYS * DAY + 60);
  polar_license_result_free(r);
  polar_license_client_free(client);

  /* A year-long lease signed by the attacker's key under the relay's kid: no lease at all. */
  CHECK_INT(forge(dir, rl.url, key, month, 1), 0);
  client = app(dir, rl.url, relay_pair, month);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  r = status(client, key);
  CHECK_STR(polar_license_result_lease_kid(r), "");
  polar_license_result_free(r);
  polar_license_client_free(client);
  /* ...while the same forged record still fools the unsigned app. */
  CHECK(licensed_from_cache(dir, rl.url, NULL, month, key, &reason));
  remove_tree(dir);
}

/* ---- the table's rows (tests/signed/rows.tsv: its header says what the columns mean) ------ */

/* Whether `r` (the activation's answer when `activation`, else a check's) is what `expect`
 * says; `said` gets what it was. cache:N allows a minute less: the relay signs on the wall
 * clock, a moment before the check. */
static int row_answers(const polar_license_result *r, const char *expect, int activation,
                       char *said, size_t said_len) {
  polar_license_outcome outcome = polar_license_result_outcome(r);
  int licensed = polar_license_result_is_licensed(r);
  int from_cache = licensed && polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE;
  const char *code = polar_license_reason_code(polar_license_result_reason(r));
  long long left = polar_license_result_grace_remaining_seconds(r);
  snprintf(said, said_len, "outcome %d, reason \"%s\", source %d, grace left %lld: %s",
           (int)outcome, code, (int)polar_license_result_source(r), left,
           polar_license_result_detail(r));
  if (strcmp(expect, "granted") == 0)
    return activation ? outcome == POLAR_LICENSE_OUTCOME_DONE : licensed;
  if (strcmp(expect, "cache") == 0) return from_cache;
  if (strncmp(expect, "cache:", 6) == 0)
    return from_cache && left <= atoll(expect + 6) && left > atoll(expect + 6) - 60;
  return !licensed && outcome != POLAR_LICENSE_OUTCOME_DONE && strcmp(code, expect) == 0;
}

/* Records whether `r` is what `expect` says, naming the row and what was asked. */
static void row_check(const char *row, const char *what, const polar_license_result *r,
                      const char *expect, int activation) {
  char said[768], name[256];
  harness_count();
  if (!row_answers(r, expect, activation, said, sizeof said)) {
    snprintf(name, sizeof name, "row \"%s\": %s", row, what);
    harness_fail_str(__FILE__, __LINE__, name, said, expect);
  }
}

/* One row in a fresh world: a relay process signing as the row says, the key activated in
 * signed mode through it, the row's steps (offline: the relay ends), the row's app checks. */
static void play_row(char *col[6]) {
  const char *name = col[0], *lease = col[1];
  char dir[64], key[64], what[300];
  char *step;
  relay rl;
  int64_t offset = 0;
  polar_license_client *client;
  polar_license_result *r = NULL;
  if (strcmp(lease, "other-machine") == 0) {
    /* The real relay binds its lease to the fingerprint the app sends: not staged here. */
    printf("  row \"%s\": not played in C (a relay process cannot sign for another machine)\n",
           name);
    return;
  }
  snprintf(what, sizeof what, "row \"%s\": a lease (honest, other-key)", name);
  harness_count();
  if (strcmp(lease, "honest") != 0 && strcmp(lease, "other-key") != 0) {
    harness_fail_str(__FILE__, __LINE__, what, lease, "honest");
    return;
  }
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_signing = strcmp(lease, "other-key") == 0 ? impostor_file : NULL;
  relay_start(&rl);
  relay_signing = NULL;

  client = app(dir, rl.url, relay_pair, 0);
  r = activate_labeled(client, key, "c-test");
  row_check(name, "the activation", r, col[2], 1);
  polar_license_result_free(r);
  polar_license_client_free(client);

  for (step = strtok(col[3], " "); step != NULL; step = strtok(NULL, " ")) {
    size_t n = strlen(step);
    if (strcmp(step, "-") == 0) continue;
    if (strcmp(step, "offline") == 0) {
      relay_stop(&rl);
    } else if (strcmp(step, "forge") == 0) {
      CHECK_INT(forge(dir, rl.url, key, offset, 0), 0);
    } else if (step[0] == '+' && n > 1) {
      offset += (int64_t)atoll(step + 1) * (step[n - 1] == 'd' ? DAY : 1);
    } else {
      snprintf(what, sizeof what, "row \"%s\": a step", name);
      harness_fail_str(__FILE__, __LINE__, what, step, "offline, forge, +N or +Nd");
    }
  }

  client = app(dir, rl.url, strcmp(col[4], "none") == 0 ? NULL : relay_pair, offset);
  r = check(client, key);
  row_check(name, "the check", r, col[5], 0);
  polar_license_result_free(r);
  polar_license_client_free(client);
  relay_stop(&rl);
  remove_tree(dir);
}

/* Every row of the table; a failure names its row. */
static void signed_mode_rows(void) {
  const char *path = getenv("POLAR_SIGNED_ROWS");
  char line[1024];
  char *col[6];
  int rows = 0, n;
  FILE *table = fopen(path != NULL && path[0] != '\0' ? path : "tests/signed/rows.tsv", "r");
  if (table == NULL) fatal("tests/signed/rows.tsv (run from the repository, or set POLAR_SIGNED_ROWS)");
  while (fgets(line, sizeof line, table) != NULL) {
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '#' || line[strspn(line, " \t")] == '\0') continue;
    /* Six columns, one tab between each. */
    for (n = 0; n < 6 && p != NULL; n++) {
      col[n] = p;
      p = strchr(p, '\t');
      if (p != NULL) *p++ = '\0';
    }
    harness_count();
    if (n != 6 || p != NULL) {
      harness_fail_str(__FILE__, __LINE__, "a row of six columns", line, "six columns");
      continue;
    }
    rows++;
    play_row(col);
  }
  fclose(table);
  CHECK(rows >= 9);
}

/* Air-gapped: the machine without network makes a request line; an online machine fetches the
 * response line through the relay; installed on the first machine it licenses from the cache
 * with no network until the lease ends. A damaged line, one installed on a machine it was not
 * made for (binding off here), or one fetched from Polar itself stores nothing. */
static void air_gapped_request_fetch_install(void) {
  char offline_dir[64], online_dir[64], key[64], offline_url[64], request_line[4096];
  char response_line[16384], damaged[16384], activation[64];
  relay rl;
  polar_license_client *offline, *online, *direct;
  polar_license_config *config = NULL;
  polar_license_client *unbound = NULL;
  polar_license_request *request;
  polar_license_result *r = NULL;
  long long ends;
  temp_dir(offline_dir);
  temp_dir(online_dir);
  emu_new_key("\"limit_activations\":3", key);
  snprintf(offline_url, sizeof offline_url, "http://127.0.0.1:%d", closed_port());
  offline = app(offline_dir, offline_url, relay_pair, 0);

  /* 1. On the machine without network. */
  request = new_request(key);
  must(polar_license_request_set_label(request, "lab machine"));
  must(polar_license_request_add_condition_string(request, "site", "basement"));
  must(polar_license_client_lease_request(offline, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK(strncmp(polar_license_result_line(r), "polar-license-activation-request.v1.", 36) == 0);
  CHECK(strchr(polar_license_result_line(r), '\n') == NULL);
  snprintf(request_line, sizeof request_line, "%s", polar_license_result_line(r));
  polar_license_result_free(r);
  r = check(offline, key);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);

  /* 2. On an online machine: through Polar itself there is no lease, so no response line... */
  direct = app(online_dir, emu_url(), NULL, 0);
  must(polar_license_client_lease_fetch(direct, request_line, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  CHECK_STR(polar_license_result_line(r), "");
  polar_license_result_free(r);
  polar_license_client_free(direct);
  /* ...through the relay there is. */
  relay_start(&rl);
  online = app(online_dir, rl.url, NULL, 0);
  must(polar_license_client_lease_fetch(online, request_line, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK(strncmp(polar_license_result_line(r), "polar-license-activation-response.v1.", 37) == 0);
  CHECK(strlen(polar_license_result_line(r)) < sizeof response_line);
  snprintf(response_line, sizeof response_line, "%s", polar_license_result_line(r));
  polar_license_result_free(r);
  polar_license_client_free(online);
  relay_stop(&rl);

  /* 3. Back on the first machine. Damaged in transit: nothing stored. */
  snprintf(damaged, sizeof damaged, "%s", response_line);
  damaged[strlen(damaged) - 10] = '\0';
  must(polar_license_client_lease_install(offline, damaged, &r));
  CHECK_INVALID(r, "response");
  CHECK_STR(polar_license_result_activation_id(r), "");
  polar_license_result_free(r);
  r = status(offline, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_EMPTY);
  polar_license_result_free(r);
  /* A machine it was not made for (here: one whose activations are not bound to it). */
  config = demo_config(offline_url, offline_dir);
  must(polar_license_config_set_app_secret(config, (const uint8_t *)APP_SECRET,
                                           strlen(APP_SECRET)));
  must(polar_license_config_set_machine_binding(config, false));
  must(polar_license_config_add_relay_key(config, relay_pair));
  unbound = client_of(config);
  must(polar_license_client_lease_install(unbound, response_line, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  polar_license_result_free(r);
  polar_license_client_free(unbound);
  r = status(offline, key);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_EMPTY);
  polar_license_result_free(r);

  /* The line as it came: the activation and its lease are stored. */
  must(polar_license_client_lease_install(offline, response_line, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(strlen(polar_license_result_activation_id(r)), 36);
  snprintf(activation, sizeof activation, "%s", polar_license_result_activation_id(r));
  CHECK_STR(polar_license_result_lease_kid(r), KID);
  ends = polar_license_result_lease_expires_at(r);
  CHECK(ends > now_seconds() + LEASE_DAYS * DAY - HOUR && ends <= now_seconds() + LEASE_DAYS * DAY);
  CHECK_INT(polar_license_result_limit_activations(r), 3);
  polar_license_result_free(r);
  r = status(offline, key);
  CHECK_STR(polar_license_result_activation_id(r), activation);
  CHECK_INT(polar_license_result_lease_expires_at(r), ends);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(offline);

  /* Licensed with no network at all, until the lease ends. */
  offline = app(offline_dir, offline_url, relay_pair, 2 * DAY);
  r = CHECKED_FROM(offline, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), activation);
  CHECK_INT(polar_license_result_grace_ends_at(r), ends);
  polar_license_result_free(r);
  polar_license_client_free(offline);
  offline = app(offline_dir, offline_url, relay_pair, LEASE_DAYS * DAY + 60);
  EXPECT_CHECK(offline, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_GRACE_EXPIRED);
  client_done(offline, offline_dir);
  remove_tree(online_dir);
}

#ifndef _WIN32
/* ---- issue #53: a captured answer replayed, a late grant (POSIX: fork) -------------------- */

/* The user's own recording proxy between the app and the relay: polar-license-tape
 * (crates/testkit, POLAR_LICENSE_TAPE), driven over its /__tape/ routes. */
typedef struct {
  pid_t pid;
  int port;
  char url[64];
  char log[128];
} tape;

static void tape_start(tape *t, const char *upstream) {
  const char *bin = env_or_die("POLAR_LICENSE_TAPE");
  snprintf(t->log, sizeof t->log, "%s/tape-%d.log", key_dir, rand());
  fflush(stdout);
  fflush(stderr);
  t->pid = fork();
  if (t->pid < 0) fatal("fork");
  if (t->pid == 0) {
    if (freopen(t->log, "w", stdout) == NULL) _exit(126);
    execl(bin, bin, upstream, (char *)NULL);
    _exit(127);
  }
  if (!listening_on(t->log, t->url, sizeof t->url)) {
    kill(t->pid, SIGKILL);
    waitpid(t->pid, NULL, 0);
    fatal("the proxy did not start (polar-license-tape)");
  }
  t->port = atoi(strrchr(t->url, ':') + 1);
}

static void tape_stop(tape *t) {
  kill(t->pid, SIGTERM);
  waitpid(t->pid, NULL, 0);
  remove(t->log);
}

/* A /__tape/ route: its HTTP status (the body in `out`, when not NULL). */
static int tape_route(const tape *t, const char *method, const char *path, const char *body,
                      char *out, size_t out_len) {
  return emu_request_at(t->port, method, path, body, out, out_len);
}

static void tape_replaying(const tape *t, int on) {
  if (tape_route(t, "POST", "/__tape/replay", on ? "on" : "off", NULL, 0) != 204)
    fatal("the proxy's replay switch");
}

/* How many requests the proxy passed on to the relay since the last ask. */
static long tape_passed(const tape *t) {
  char body[32] = "";
  if (tape_route(t, "GET", "/__tape/passed", NULL, body, sizeof body) != 200)
    fatal("the proxy's count");
  return atol(body);
}

static int tape_captured(const tape *t) {
  char body[16] = "";
  return tape_route(t, "GET", "/__tape/captured", NULL, body, sizeof body) == 200 &&
         strcmp(body, "yes") == 0;
}

/* A signed app at `url` (the proxy) whose every check asks (revalidate after 0 s). */
static polar_license_client *asking(const char *dir, const char *url, int64_t offset) {
  polar_license_config *config = demo_config(url, dir);
  must(polar_license_config_set_app_secret(config, (const uint8_t *)APP_SECRET,
                                           strlen(APP_SECRET)));
  must(polar_license_config_add_relay_key(config, relay_pair));
  must(polar_license_config_set_grace_policy(config, 0, 7 * DAY, 600));
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  return client_of(config);
}

/* check() of `key` at `offset` with a fresh asking app; CHECK_ANSWER on it. */
static void asked(const char *dir, const char *url, int64_t offset, const char *key,
                  polar_license_outcome outcome, polar_license_reason reason) {
  polar_license_client *client = asking(dir, url, offset);
  EXPECT_CHECK(client, key, outcome, reason);
  polar_license_client_free(client);
}

/* check() of `key` at `offset` with a fresh asking app: not licensed, whatever the reason. */
static void not_licensed(const char *dir, const char *url, int64_t offset, const char *key) {
  polar_license_client *client = asking(dir, url, offset);
  polar_license_result *r = check(client, key);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  polar_license_client_free(client);
}

/* check() of `key` at `offset` with a fresh asking app: licensed online (a fresh grant). */
static void licensed_online(const char *dir, const char *url, int64_t offset, const char *key) {
  polar_license_client *client = asking(dir, url, offset);
  EXPECT_CHECK_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                    POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_client_free(client);
}

/* The reason the cache remembers (a status result's: the denial, or CLOCK_ROLLBACK). */
static polar_license_reason remembered(const char *dir, const char *url, int64_t offset,
                                       const char *key) {
  polar_license_client *client = asking(dir, url, offset);
  polar_license_result *r = status(client, key);
  polar_license_reason reason = polar_license_result_reason(r);
  polar_license_result_free(r);
  polar_license_client_free(client);
  return reason;
}

/* A replay is refused as one: unverified, reason replayed, its detail naming it; and the proxy
 * answered alone (nothing reached the relay). */
static void replay_refused(const char *dir, const tape *t, int64_t offset, const char *key) {
  polar_license_client *client = asking(dir, t->url, offset);
  polar_license_result *r;
  tape_passed(t);
  tape_replaying(t, 1);
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_REPLAYED);
  CHECK(strstr(polar_license_result_detail(r), "replay") != NULL);
  polar_license_result_free(r);
  tape_replaying(t, 0);
  CHECK_INT(tape_passed(t), 0);
  polar_license_client_free(client);
}

/* A fresh key activated in signed mode through the proxy in front of a new relay, checked once
 * online (the proxy records that 200). */
static void recorded(char dir[64], char key[64], relay *rl, tape *t) {
  char id[64];
  polar_license_client *client;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_start(rl);
  tape_start(t, rl->url);
  client = asking(dir, t->url, 0);
  activate_ok(client, key, id);
  polar_license_client_free(client);
  licensed_online(dir, t->url, 0, key);
  CHECK(tape_captured(t));
}

/* Stops the proxy and the relay, removes the cache. */
static void recorded_done(const char *dir, relay *rl, tape *t) {
  tape_stop(t);
  relay_stop(rl);
  remove_tree(dir);
}

/* Issue #53: the key revoked and denied twice online, the proxy replays the relay's earlier 200
 * with its genuine lease: refused as a replay (not this request's nonce), never licensed after,
 * online or from the cache, and the denial kept. Granted again at Polar, a fresh answer (its
 * own nonce) licenses online. (The clock is the wall clock's here: the relay and the emulator
 * are processes on it.) */
static void a_replayed_relay_grant_after_a_denial_is_refused_and_the_denial_kept(void) {
  char dir[64], key[64];
  relay rl;
  tape t;
  recorded(dir, key, &rl, &t);

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  asked(dir, t.url, 0, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  asked(dir, t.url, 0, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  replay_refused(dir, &t, 0, key);
  CHECK_INT(remembered(dir, t.url, 0, key), POLAR_LICENSE_REASON_INACTIVE);

  /* Polar unreachable: the cache does not license, the denial still remembered. */
  emu_fault("{\"kind\":\"close_immediately\"}");
  not_licensed(dir, t.url, 0, key);
  CHECK_INT(remembered(dir, t.url, 0, key), POLAR_LICENSE_REASON_INACTIVE);
  emu_fault(NULL);

  /* Granted again at Polar, a second on (a lease of the denial's second is not newer than it):
   * a fresh answer with its nonce licenses online. */
  emu_patch_key(key, "{\"status\":\"granted\"}");
  pause_ms(1100);
  licensed_online(dir, t.url, 0, key);
  recorded_done(dir, &rl, &t);
}

/* Issue #53: the clock 30 days ahead, then set back 28, Polar unreachable: clock_rollback. The
 * proxy's replay of the earlier 200 is refused as a replay, and the rollback evidence kept (the
 * next offline check still says clock_rollback); a fresh grant with its nonce licenses online. */
static void a_replayed_relay_grant_after_a_clock_set_back_is_refused_and_the_rollback_kept(void) {
  char dir[64], key[64];
  relay rl;
  tape t;
  recorded(dir, key, &rl, &t);

  emu_fault("{\"kind\":\"close_immediately\"}");
  not_licensed(dir, t.url, 30 * DAY, key);
  asked(dir, t.url, 2 * DAY, key, POLAR_LICENSE_OUTCOME_UNVERIFIED,
        POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  emu_fault(NULL);

  replay_refused(dir, &t, 2 * DAY, key);

  emu_fault("{\"kind\":\"close_immediately\"}");
  asked(dir, t.url, 2 * DAY + 60, key, POLAR_LICENSE_OUTCOME_UNVERIFIED,
        POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  CHECK_INT(remembered(dir, t.url, 2 * DAY + 60, key), POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  emu_fault(NULL);

  licensed_online(dir, t.url, 2 * DAY + 120, key);
  recorded_done(dir, &rl, &t);
}

/* Issue #53 item 2, the late-grant race: two processes on one cache; one process's check gets
 * the relay's 200, which the proxy holds while this process records Polar's inactive denial;
 * then the held grant arrives. It must end denied, and the cache keep denying (at once, and an
 * hour later with Polar unreachable). Played with the denial's clock where the held check's is
 * and 4 s after it. */
static void a_denial_recorded_while_a_grant_was_held_survives_the_grant(void) {
  static const int64_t moved[] = {0, 4};
  unsigned i;
  for (i = 0; i < sizeof moved / sizeof moved[0]; i++) {
    char dir[64], key[64], id[64];
    relay rl;
    tape t;
    pid_t pid;
    int exit_status = -1;
    polar_license_client *other;
    polar_license_result *r = NULL;
    temp_dir(dir);
    emu_new_key("\"limit_activations\":3", key);
    relay_start(&rl);
    tape_start(&t, rl.url);
    other = asking(dir, t.url, 0);
    activate_ok(other, key, id);
    polar_license_client_free(other); /* nothing of this process's client in the child */

    if (tape_route(&t, "POST", "/__tape/hold", NULL, NULL, 0) != 204) fatal("the proxy's hold");
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      /* The other process: its check's grant is held on its way. */
      polar_license_client *held = asking(dir, t.url, 0);
      r = check(held, key);
      CHECK(!polar_license_result_is_licensed(r));
      CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
      polar_license_result_free(r);
      polar_license_client_free(held);
      harness_child_exit();
    }
    CHECK_INT(tape_route(&t, "GET", "/__tape/held", NULL, NULL, 0), 200);

    /* Meanwhile the key is revoked and this process records Polar's denial. */
    emu_patch_key(key, "{\"status\":\"revoked\"}");
    other = asking(dir, t.url, moved[i]);
    r = validate_activation(other, key, id);
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
    polar_license_result_free(r);

    CHECK_INT(tape_route(&t, "POST", "/__tape/release", NULL, NULL, 0), 204);
    CHECK(waitpid(pid, &exit_status, 0) == pid);
    if (!(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)) {
      fprintf(stderr, "  moved %lld: the held check did not end denied (exit status %d)\n",
              (long long)moved[i], exit_status);
      CHECK(!"the late grant ends denied");
    }

    /* The cache keeps denying: at once, and an hour later with Polar unreachable. */
    r = check(other, key);
    CHECK(!polar_license_result_is_licensed(r));
    polar_license_result_free(r);
    polar_license_client_free(other);
    CHECK_INT(remembered(dir, t.url, moved[i], key), POLAR_LICENSE_REASON_INACTIVE);
    emu_fault("{\"kind\":\"close_immediately\"}");
    not_licensed(dir, t.url, moved[i] + HOUR, key);
    CHECK_INT(remembered(dir, t.url, moved[i] + HOUR, key), POLAR_LICENSE_REASON_INACTIVE);
    emu_fault(NULL);
    recorded_done(dir, &rl, &t);
  }
}

/* ---- issue #62: signed mode trusts only signed facts (tests/signed_facts.rs in C) ---------- */

/* `at` (unix seconds, UTC) as RFC 3339 (`%Y-%m-%dT%H:%M:%SZ`) or as a date (`%Y-%m-%d`). */
static void utc(long long at, const char *format, char *out, size_t out_len) {
  time_t t = (time_t)at;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, format, &tm) == 0) fatal("a UTC time");
}

/* An app at `url` (the proxy) whose every check asks, for a build released on `released`
 * (YYYY-MM-DD: the perpetual fallback), in signed mode (the relay's key) when `signed_mode`. */
static polar_license_client *released_app(const char *dir, const char *url, int64_t offset,
                                          const char *released, int signed_mode) {
  polar_license_config *config = demo_config(url, dir);
  must(polar_license_config_set_app_secret(config, (const uint8_t *)APP_SECRET,
                                           strlen(APP_SECRET)));
  if (signed_mode) must(polar_license_config_add_relay_key(config, relay_pair));
  must(polar_license_config_set_grace_policy(config, 0, 7 * DAY, 600));
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  must(polar_license_config_set_released(config, released));
  return client_of(config);
}

/* check() of `key` at `offset` with a fresh signed app released on `released`: not licensed,
 * and no fallback; returns the answer's reason. */
static polar_license_reason no_fallback(const char *dir, const char *url, int64_t offset,
                                        const char *released, const char *key) {
  polar_license_client *client = released_app(dir, url, offset, released, 1);
  polar_license_result *r = check(client, key);
  polar_license_reason reason = polar_license_result_reason(r);
  CHECK(!polar_license_result_is_licensed(r));
  CHECK(!polar_license_result_fallback(r));
  polar_license_result_free(r);
  polar_license_client_free(client);
  return reason;
}

/* One of the proxy's forging switches (`/__tape/forge`: `expired` or `off`; `/__tape/inject`:
 * `on` or `off`). */
static void tape_forging(const tape *t, const char *route, const char *body) {
  if (tape_route(t, "POST", route, body, NULL, 0) != 204) fatal("the proxy's forging switch");
}

/* Issue #62: the key paid through 30 days from now, then refunded (revoked); the proxy turns
 * fake relay and answers every validate with an unsigned `404 "License key has expired."`. A
 * build released today is not licensed by it in signed mode: online, offline (Polar
 * unreachable behind the relay), nor 40 days later, and the denial is kept. Without relay keys
 * the same forgery falls back (nothing is signed there: docs/threat-model.md says so). */
static void a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode(void) {
  char dir[64], plain[64], key[64], id[64], fields[128], ends[32], today[16];
  long long now = now_seconds();
  polar_license_client *client;
  polar_license_result *r;
  relay rl;
  tape t;
  utc(now + 30 * DAY, "%Y-%m-%dT%H:%M:%SZ", ends, sizeof ends);
  utc(now, "%Y-%m-%d", today, sizeof today);
  snprintf(fields, sizeof fields, "\"limit_activations\":3,\"expires_at\":\"%s\"", ends);
  temp_dir(dir);
  temp_dir(plain);
  emu_new_key(fields, key);
  relay_start(&rl);
  tape_start(&t, rl.url);
  client = released_app(dir, t.url, 0, today, 1);
  activate_ok(client, key, id);
  polar_license_client_free(client);
  client = released_app(plain, t.url, 0, today, 0);
  activate_ok(client, key, id);
  polar_license_client_free(client);
  licensed_online(dir, t.url, HOUR, key);

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  tape_forging(&t, "/__tape/forge", "expired");
  /* Signed: the forged "expired" only narrows (a denial), never a fallback. */
  CHECK_INT(no_fallback(dir, t.url, 2 * HOUR, today, key), POLAR_LICENSE_REASON_EXPIRED);
  /* Unsigned: nothing is signed, so the forgery is believed (the limit the threat model
   * states), which is what the signed app above refuses. */
  client = released_app(plain, t.url, 2 * HOUR, today, 0);
  r = check(client, key);
  CHECK(polar_license_result_is_licensed(r));
  CHECK(polar_license_result_fallback(r));
  polar_license_result_free(r);
  polar_license_client_free(client);

  /* Offline: the relay cannot reach Polar (502), the proxy passes it on. */
  tape_forging(&t, "/__tape/forge", "off");
  emu_fault("{\"kind\":\"close_immediately\"}");
  no_fallback(dir, t.url, 3 * HOUR, today, key);
  emu_fault(NULL);
  /* 40 days later: the fake relay again, then offline again. */
  tape_forging(&t, "/__tape/forge", "expired");
  no_fallback(dir, t.url, 40 * DAY, today, key);
  tape_forging(&t, "/__tape/forge", "off");
  emu_fault("{\"kind\":\"close_immediately\"}");
  no_fallback(dir, t.url, 40 * DAY + 60, today, key);
  /* The denial kept (status reads the record). */
  CHECK_INT(remembered(dir, t.url, 40 * DAY + 120, key), POLAR_LICENSE_REASON_EXPIRED);
  emu_fault(NULL);
  remove_tree(plain);
  recorded_done(dir, &rl, &t);
}

/* Issue #62: one unsigned cancelled `subscription` (ended yesterday) added by the proxy to the
 * relay's genuine grant, then Polar's own "no longer active" (revoked): a build released three
 * days ago does not fall back on it in signed mode, online or offline (the signed `sub_end`
 * claim is the only subscription fact believed), and the denial is kept. */
static void an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual(void) {
  char dir[64], key[64], id[64], released[16];
  polar_license_client *client;
  polar_license_result *r;
  relay rl;
  tape t;
  utc(now_seconds() - 3 * DAY, "%Y-%m-%d", released, sizeof released);
  temp_dir(dir);
  emu_new_key("\"limit_activations\":3", key);
  relay_start(&rl);
  tape_start(&t, rl.url);
  client = released_app(dir, t.url, 0, released, 1);
  activate_ok(client, key, id);
  polar_license_client_free(client);

  tape_forging(&t, "/__tape/inject", "on");
  tape_passed(&t);
  client = released_app(dir, t.url, 2 * HOUR, released, 1);
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(!polar_license_result_fallback(r));
  polar_license_result_free(r);
  polar_license_client_free(client);
  CHECK(tape_passed(&t) >= 1); /* the injected grant came through the proxy */
  tape_forging(&t, "/__tape/inject", "off");

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  CHECK_INT(no_fallback(dir, t.url, 4 * HOUR, released, key), POLAR_LICENSE_REASON_INACTIVE);
  emu_fault("{\"kind\":\"close_immediately\"}");
  no_fallback(dir, t.url, 5 * HOUR, released, key);
  CHECK_INT(remembered(dir, t.url, 5 * HOUR + 60, key), POLAR_LICENSE_REASON_INACTIVE);
  emu_fault(NULL);
  recorded_done(dir, &rl, &t);
}
#endif

int main(void) {
  const char *cli = env_or_die("POLAR_LICENSE_CLI");
  char command[512], line[256];
  env_or_die("POLAR_LICENSE_FORGE_C");
  emu_url();
  srand((unsigned)time(NULL) ^ (unsigned)getpid());

  /* The seller's key, made once: `relay keygen` prints KID=k4.public.... */
  temp_dir(key_dir);
  snprintf(key_file, sizeof key_file, "%s/relay.key", key_dir);
  snprintf(command, sizeof command,
           Q "%s" Q " relay keygen --out " Q "%s" Q " --kid " KID " 2>" DEVNULL, cli, key_file);
  if (run_line(command, relay_pair, sizeof relay_pair) != 0 ||
      strncmp(relay_pair, KID "=k4.public.", strlen(KID "=k4.public.")) != 0) {
    fprintf(stderr, "relay keygen printed: %s\n", relay_pair);
    fatal("polar-license relay keygen");
  }
  snprintf(command, sizeof command,
           Q "%s" Q " relay keygen --out " Q "%s/old.key" Q " --kid old 2>" DEVNULL, cli, key_dir);
  if (run_line(command, old_pair, sizeof old_pair) != 0 || strncmp(old_pair, "old=", 4) != 0)
    fatal("polar-license relay keygen (a second key)");
  /* Another key under the relay's own kid (the table's other-key rows). */
  snprintf(impostor_file, sizeof impostor_file, "%s/impostor.key", key_dir);
  snprintf(command, sizeof command,
           Q "%s" Q " relay keygen --out " Q "%s" Q " --kid " KID " 2>" DEVNULL, cli,
           impostor_file);
  if (run_line(command, line, sizeof line) != 0 || strcmp(line, relay_pair) == 0)
    fatal("polar-license relay keygen (another key under the relay's kid)");

  RUN(bad_relay_keys_and_nulls_are_clear_errors);
  RUN(air_gapped_calls_refuse_bad_arguments);
  RUN(an_unsigned_record_never_licenses_offline_in_signed_mode);
  RUN(in_signed_mode_the_portal_url_takes_the_sign_in_to_polar);
  RUN(through_the_relay_the_cache_licenses_within_the_lease_only);
  RUN(through_the_relay_a_check_says_where_polars_verdict_came_from);
  RUN(the_forged_record_attack_is_refused_in_signed_mode);
  RUN(signed_mode_rows);
  RUN(air_gapped_request_fetch_install);
#ifndef _WIN32
  RUN(a_replayed_relay_grant_after_a_denial_is_refused_and_the_denial_kept);
  RUN(a_replayed_relay_grant_after_a_clock_set_back_is_refused_and_the_rollback_kept);
  RUN(a_denial_recorded_while_a_grant_was_held_survives_the_grant);
  RUN(a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode);
  RUN(an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual);
#endif
  remove_tree(key_dir);
  return harness_summary("test_signed");
}
