/*
 * test_seller_table.c: the seller's rows (issue #54, "Done when" 2nd bullet) through the C
 * API: perpetual fallback and trials from the one table every face plays
 * (tests/vectors/seller-rows.json). test-c.sh flattens it with `node tests/js/seller-rows.mjs
 * --flat` into $POLAR_SELLER_ROWS (each expected verdict rendered as every face renders it);
 * this program plays each row against the suite's emulator (a key of its own per row, Polar's
 * clock moved with POST /__emulator/clock, the client's with
 * polar_license_config_set_clock_offset_for_testing), renders what the C API answered the
 * same way and compares. The suite's emulator serves 2027-01: rows the table runs at 2026-10
 * run at 2027-01 here (their answers are the same).
 *
 * Each row is written to $POLAR_SELLER_TABLE_OUT (default target/seller-table/c.tsv) for
 * scripts/seller-table.sh; test-c.sh runs it plain (c.tsv), under ASan+UBSan (c-asan.tsv) and
 * under valgrind (c-valgrind.tsv).
 *
 * The values rows (issue #68) run on the native relay (`relay serve`), and on the npm relay
 * under workerd where the installed npm package ($CONSUMER) and scripts/npm's workerd are
 * there. With POLAR_SELLER_ONLY=workers it plays only those Workers cells, whether they are
 * there or not, and adds them to the file (its other rows kept): scripts/seller-workers.sh runs
 * the plain build so once the package is installed, after test-c.sh wrote the rest.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define DAY 86400LL
#define TRIAL_BENEFIT "7f3c1e2a-9b4d-4c8e-a1f2-3d4e5f6a7b8c"
#define PAID_BENEFIT "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
/* Devices rows (issue #64): the demo benefit (device management on) and its customer's email. */
#define DEVICES_BENEFIT "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d"
#define DEVICES_EMAIL "jane.doe@gmail.com"
/* A benefit no seed describes: device management off. */
#define UNMANAGED_BENEFIT "0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b"
#define MAX_STEPS 16
#define MAX_VSTEPS 24
#define LINE 512

struct step {
  char what[16];
  double day; /* NaN-free: steps without a day (offline) keep 0 */
  int cell;
  char expected[256];
  int times; /* a request_codes step's */
};

struct row {
  char id[64];
  char expires_day[16], benefit[16], sub_status[16], period_end_day[16], ends_day[16];
  char released_day[16];
  int cancel, trial_days, trial_benefit, limit_activations, customer_admin, devices;
  int rate_limit; /* Polar's per-address limits on for the row (POST /__emulator/rate-limit) */
  struct step steps[MAX_STEPS];
  int n_steps;
};

/* A values row (issue #68, `world: values`): its steps as `--flat` gives them. */
struct vstep {
  char what[16], key[16], relay[8], name[32], units[16], id[32];
  int cell;
  char expected[96];
  char json[400];
};

struct vrow {
  char id[64], hosts[32];
  struct vstep steps[MAX_VSTEPS];
  int n_steps;
};

static FILE *tsv;

static void stop(const char *what) {
  fprintf(stderr, "test_seller_table: %s\n", what);
  exit(2);
}

/* The seller's relay (`polar-license relay serve`, POLAR_LICENSE_CLI) in front of the suite's
 * emulator on a port of its own, its signing key made by `relay keygen` in `dir`: its pid, its
 * URL in `relay` (a devices_relay step lists through it). */
static int relay_start(const char *dir, char relay[64]) {
  const char *cli = getenv("POLAR_LICENSE_CLI");
  char key[128], port_text[16];
  pid_t child;
  int i, status, relay_port = closed_port();
  snprintf(port_text, sizeof port_text, "%d", relay_port);
  snprintf(relay, 64, "http://127.0.0.1:%d", relay_port);
  snprintf(key, sizeof key, "%s/relay.key", dir);
  if (cli == NULL || cli[0] == '\0') {
    CHECK(!"POLAR_LICENSE_CLI is set");
    return -1;
  }
  child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    if (freopen("/dev/null", "w", stdout) == NULL) _exit(126);
    execl(cli, cli, "relay", "keygen", "--out", key, (char *)NULL);
    _exit(127);
  }
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    if (freopen("/dev/null", "w", stdout) == NULL) _exit(126);
    setenv("POLAR_ACCESS_TOKEN", "polar_oat_emulator_demo_0123456789abcdef", 1);
    execl(cli, cli, "--base-url", emu_url(), "relay", "serve", "--signing-key", key, "--port",
          port_text, (char *)NULL);
    _exit(127);
  }
  /* A bounded wait for it to answer (at most 10 s), not a timing assertion. */
  for (i = 0; i < 500; i++) {
    if (emu_request_at(relay_port, "GET", "/healthz", NULL, NULL, 0) == 200) return (int)child;
    {
      struct timespec pause = {0, 20000000L};
      nanosleep(&pause, NULL);
    }
  }
  CHECK(!"the relay started");
  return (int)child;
}

static long long seconds(double day) { return (long long)(day * (double)DAY + (day < 0 ? -0.5 : 0.5)); }

/* `+Nd`, or `+Nd+Mm`: as crates/testkit/src/native/seller_rows.rs renders a time. */
static void at(long long secs, char out[32]) {
  double m = (double)secs / 60.0;
  long long minutes = (long long)(m < 0 ? m - 0.5 : m + 0.5);
  long long d = minutes >= 0 ? minutes / 1440 : -((-minutes + 1439) / 1440);
  long long rem = minutes - d * 1440;
  if (rem == 0)
    snprintf(out, 32, "%+lldd", d);
  else
    snprintf(out, 32, "%+lldd+%lldm", d, rem);
}

static void when(long long t, int day_only, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, day_only ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void set_polar_clock(long long offset) {
  char body[64];
  snprintf(body, sizeof body, "{\"offset_seconds\":%lld}", offset);
  if (emu_request("POST", "/__emulator/clock", body, NULL, 0) != 204) stop("could not move Polar's clock");
}

/* What a result says, in the table's vocabulary, times from `start`. */
/* Polar's per-address rate limits on or off at the suite's emulator, every window and block
 * forgotten (POST /__emulator/rate-limit). */
static void set_rate_limit(int on) {
  if (emu_request("POST", "/__emulator/rate-limit", on ? "{\"enabled\":true}" : "{\"enabled\":false}",
                  NULL, 0) != 204)
    stop("could not set the emulator's rate limit");
}

static void render(const struct row *row, const polar_license_result *r, long long start,
                   char out[256]) {
  char t[32];
  size_t n;
  polar_license_trial trial = polar_license_result_trial(r);
  if (polar_license_result_outcome(r) == POLAR_LICENSE_OUTCOME_LICENSED) {
    snprintf(out, 256, "licensed %s",
             polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE ? "cache" : "online");
  } else if (trial == POLAR_LICENSE_TRIAL_ACTIVE && polar_license_result_trial_local(r)) {
    snprintf(out, 256, "trial");
  } else {
    snprintf(out, 256, "%s", polar_license_reason_code(polar_license_result_reason(r)));
  }
  n = strlen(out);
  if (strcmp(row->released_day, "-") != 0) {
    int64_t paid = polar_license_result_paid_through(r);
    if (paid >= 0) at(paid - start, t);
    if (polar_license_result_fallback(r))
      snprintf(out + n, 256 - n, " · fallback to %s", paid >= 0 ? t : "?");
    else if (paid >= 0)
      snprintf(out + n, 256 - n, " · no fallback, paid to %s", t);
    else
      snprintf(out + n, 256 - n, " · no fallback");
    n = strlen(out);
  }
  if (row->trial_days > 0 || row->trial_benefit) {
    if (trial == POLAR_LICENSE_TRIAL_NONE) {
      snprintf(out + n, 256 - n, " · no trial");
    } else {
      int64_t ends = polar_license_result_trial_ends_at(r);
      const char *state = trial == POLAR_LICENSE_TRIAL_ACTIVE  ? "active"
                          : trial == POLAR_LICENSE_TRIAL_ENDED ? "ended"
                                                               : "refused";
      if (ends >= 0) at(ends - start, t);
      snprintf(out + n, 256 - n, " · trial %s %s %ud left, ends %s",
               polar_license_result_trial_local(r) ? "local" : "key", state,
               (unsigned)polar_license_result_trial_days_left(r), ends >= 0 ? t : "?");
    }
  }
}

static polar_license_client *app(const struct row *row, const char *dir, long long start,
                                 long long offset) {
  char day[32];
  polar_license_config *config = demo_config(emu_url(), dir);
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  if (strcmp(row->released_day, "-") != 0) {
    when(start + seconds(atof(row->released_day)), 1, day);
    must(polar_license_config_set_released(config, day));
  }
  if (row->trial_days > 0) must(polar_license_config_set_trial(config, (uint32_t)row->trial_days));
  if (row->trial_benefit) must(polar_license_config_add_trial_benefit(config, TRIAL_BENEFIT));
  return client_of(config);
}

/* Another machine activates `key` (set-up: Polar's public activate, not the C API). */
static void elsewhere(const char *key) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"key\":\"%s\",\"organization_id\":\"" DEMO_ORG "\",\"label\":\"elsewhere\"}", key);
  if (emu_request("POST", "/v1/customer-portal/license-keys/activate", body, NULL, 0) != 200)
    stop("another machine could not activate");
}

/* The customer rotates `key` at Polar (the emulator's control route: what Polar's rotate does,
 * the record id, limits and activations kept, the old string 404 at once). */
static void rotate(const char *key) {
  char path[160];
  snprintf(path, sizeof path, "/__emulator/keys/%s/rotate", key);
  if (emu_request("POST", path, "", NULL, 0) != 200) stop("could not rotate the key");
}

/* The newest code the emulator "emailed" (its /__emulator/customer-session/codes), into
 * `code`; "" when none. */
static void emailed_code(char code[8]) {
  static char body[1 << 18];
  const char *at, *found = NULL;
  code[0] = '\0';
  if (emu_request("GET", "/__emulator/customer-session/codes", NULL, body, sizeof body) != 200)
    return;
  for (at = strstr(body, "\"code\":\""); at != NULL; at = strstr(at + 1, "\"code\":\"")) found = at + 8;
  if (found != NULL && strlen(found) >= 6) {
    memcpy(code, found, 6);
    code[6] = '\0';
  }
}

/* A devices step's cell from a portal result: `devices:N,this:marked|unmarked`, or the
 * failure's code. */
static void devices_cell(const polar_license_portal_result *r, char out[256]) {
  size_t i, n;
  int marked = 0;
  if (polar_license_portal_result_error(r) != POLAR_LICENSE_PORTAL_ERROR_NONE) {
    snprintf(out, 256, "%s", polar_license_portal_result_code(r));
    return;
  }
  n = polar_license_portal_result_device_count(r);
  for (i = 0; i < n; i++) marked |= polar_license_portal_result_device_this_machine(r, i);
  snprintf(out, 256, "devices:%zu,this:%s", n, marked ? "marked" : "unmarked");
}

/* A step's answer `g` against what the row expects: a difference named on stderr and counted
 * (the row fails), and the first answer (or the cell step's) kept as the row's cell. Uses
 * run_row's locals (row, i, s, failed, got, expected, cell_set). */
#define STEP_CELL(g)                                                                              \
  do {                                                                                            \
    if (strcmp((g), s->expected) != 0) {                                                          \
      fprintf(stderr, "%s: step %d: expected `%s`, got `%s`\n", row->id, i, s->expected, (g));    \
      failed = 1;                                                                                 \
    }                                                                                             \
    CHECK_STR((g), s->expected);                                                                  \
    if (!cell_set) {                                                                              \
      snprintf(got, sizeof got, "%s", (g));                                                       \
      snprintf(expected, sizeof expected, "%s", s->expected);                                     \
      if (s->cell) cell_set = 1;                                                                  \
    }                                                                                             \
  } while (0)

static void run_row(const struct row *row) {
  char key[64], fields[384], dir[64], got[256] = "", expected[256] = "", t1[32], t2[32];
  char relay_dir[64], relay[64] = "";
  int relay_pid = -1;
  long long ahead = 0; /* where a polar_clock step moved Polar's clock alone */
  long long start = (long long)time(NULL);
  int i, failed = 0, cell_set = 0;
  size_t n = 0;
  /* The client that signs in, held for the row (its session lives in its memory). */
  polar_license_client *held = NULL;
  /* The activation this machine took (a rotation keeps it). */
  char mine[64] = "";
  /* Activations on, as the demo key of the other faces' seed (3, unless the row says),
   * whatever the benefit. */
  n += (size_t)snprintf(fields, sizeof fields, "\"limit_activations\":%d", row->limit_activations);
  if (strcmp(row->expires_day, "-") != 0) {
    when(start + seconds(atof(row->expires_day)), 0, t1);
    n += (size_t)snprintf(fields + n, sizeof fields - n, ",\"expires_at\":\"%s\"", t1);
  }
  if (strcmp(row->sub_status, "-") != 0) {
    when(start + seconds(atof(row->period_end_day)), 0, t1);
    n += (size_t)snprintf(fields + n, sizeof fields - n,
                          ",\"subscription\":{\"status\":\"%s\",\"current_period_end\":\"%s\","
                          "\"cancel_at_period_end\":%s",
                          row->sub_status, t1, row->cancel ? "true" : "false");
    if (strcmp(row->ends_day, "-") != 0) {
      when(start + seconds(atof(row->ends_day)), 0, t2);
      n += (size_t)snprintf(fields + n, sizeof fields - n, ",\"ends_at\":\"%s\"", t2);
    }
    n += (size_t)snprintf(fields + n, sizeof fields - n, "}");
  }
  if (row->devices) {
    n += (size_t)snprintf(fields + n, sizeof fields - n,
                          ",\"customer_email\":\"" DEVICES_EMAIL "\"");
    emu_new_key_on(row->customer_admin ? DEVICES_BENEFIT : UNMANAGED_BENEFIT, fields, key);
  } else if (strcmp(row->benefit, "trial") == 0)
    emu_new_key_on(TRIAL_BENEFIT, fields, key);
  else if (strcmp(row->benefit, "paid") == 0)
    emu_new_key_on(PAID_BENEFIT, fields, key);
  else
    emu_new_key(fields, key);
  temp_dir(dir);
  temp_dir(relay_dir);
  for (i = 0; i < row->n_steps; i++)
    if (strcmp(row->steps[i].what, "devices_relay") == 0 && relay_pid < 0)
      relay_pid = relay_start(relay_dir, relay);
  /* Polar's per-address limits on for the row, counted afresh (the suite's emulator runs
   * without --rate-limit). */
  if (row->rate_limit) set_rate_limit(1);

  for (i = 0; i < row->n_steps; i++) {
    const struct step *s = &row->steps[i];
    long long offset = seconds(s->day);
    polar_license_client *c;
    polar_license_result *r = NULL;
    if (strcmp(s->what, "offline") == 0) {
      emu_fault("{\"kind\":\"close_immediately\"}");
      continue;
    }
    if (strcmp(s->what, "polar_clock") == 0) {
      ahead = offset;
      set_polar_clock(ahead);
      continue;
    }
    set_polar_clock(offset + ahead);
    if (strcmp(s->what, "revoke") == 0) {
      emu_patch_key(key, "{\"status\":\"revoked\"}");
      continue;
    }
    if (strcmp(s->what, "elsewhere") == 0) {
      elsewhere(key);
      continue;
    }
    if (strcmp(s->what, "request_codes") == 0) {
      /* Codes asked for until Polar refuses: sent:N, then the refusal's code and, for
       * rate_limited, the wait the result gives (`?` none). */
      char g[256];
      int k, sent = 0;
      polar_license_portal_result *p = NULL;
      if (held == NULL) held = app(row, dir, start, offset);
      for (k = 0; k < s->times; k++) {
        must(polar_license_client_request_sign_in_code(held, DEVICES_EMAIL, NULL, &p));
        if (polar_license_portal_result_error(p) != POLAR_LICENSE_PORTAL_ERROR_NONE) break;
        sent++;
        polar_license_portal_result_free(p);
        p = NULL;
      }
      snprintf(g, sizeof g, "sent:%d", sent);
      if (p != NULL) {
        size_t m = strlen(g);
        uint64_t wait = 0;
        const char *code = polar_license_portal_result_code(p);
        snprintf(g + m, sizeof g - m, ",%s", code);
        m = strlen(g);
        if (strcmp(code, "rate_limited") == 0) {
          if (polar_license_portal_result_retry_after(p, &wait))
            snprintf(g + m, sizeof g - m, ":wait=%llu", (unsigned long long)wait);
          else
            snprintf(g + m, sizeof g - m, ":wait=?");
        }
      }
      polar_license_portal_result_free(p);
      STEP_CELL(g);
      continue;
    }
    if (strcmp(s->what, "rotate") == 0) {
      rotate(key);
      continue;
    }
    if (strcmp(s->what, "sign_in") == 0 || strcmp(s->what, "devices") == 0 ||
        strcmp(s->what, "free_other") == 0 || strcmp(s->what, "devices_relay") == 0 ||
        strcmp(s->what, "recover") == 0 || strcmp(s->what, "follow_rotation") == 0) {
      polar_license_portal_result *p = NULL;
      char g[256], code[8];
      if (held == NULL) held = app(row, dir, start, offset);
      if (strcmp(s->what, "sign_in") == 0) {
        must(polar_license_client_request_sign_in_code(held, DEVICES_EMAIL, NULL, &p));
        polar_license_portal_result_free(p);
        p = NULL;
        emailed_code(code);
        must(polar_license_client_sign_in(held, code, &p));
        if (polar_license_portal_result_error(p) != POLAR_LICENSE_PORTAL_ERROR_NONE) {
          fprintf(stderr, "%s: step %d: sign in: %s\n", row->id, i, polar_license_portal_result_code(p));
          failed = 1;
        }
      } else if (strcmp(s->what, "devices") == 0 || strcmp(s->what, "devices_relay") == 0) {
        if (strcmp(s->what, "devices") == 0)
          must(polar_license_client_list_devices(held, key, &p));
        else
          must(polar_license_client_list_devices_via_relay(held, relay, key, &p));
        devices_cell(p, g);
        STEP_CELL(g);
      } else if (strcmp(s->what, "recover") == 0) {
        /* "I lost my key": the customer's keys through the session; the one whose display
         * form is the row's key's (****-last six) activated here by its id. */
        size_t k, count;
        const char *id = NULL;
        must(polar_license_client_recoverable_keys(held, &p));
        if (polar_license_portal_result_error(p) != POLAR_LICENSE_PORTAL_ERROR_NONE) {
          snprintf(g, sizeof g, "%s", polar_license_portal_result_code(p));
        } else {
          count = polar_license_portal_result_key_count(p);
          for (k = 0; k < count && id == NULL; k++) {
            const char *shown = polar_license_portal_result_key_display(p, k);
            size_t n = strlen(shown), m = strlen(key);
            if (n > 6 && m >= 6 && strcmp(shown + n - 6, key + m - 6) == 0)
              id = polar_license_portal_result_key_id(p, k);
          }
          if (id == NULL) {
            snprintf(g, sizeof g, "unlisted");
          } else {
            polar_license_result *a = NULL;
            must(polar_license_client_recover(held, id, "Recovered here", &a));
            snprintf(g, sizeof g, "recovered:%s",
                     polar_license_result_outcome(a) == POLAR_LICENSE_OUTCOME_DONE
                         ? "activated"
                         : polar_license_reason_code(polar_license_result_reason(a)));
            polar_license_result_free(a);
          }
        }
        STEP_CELL(g);
      } else if (strcmp(s->what, "follow_rotation") == 0) {
        /* The row's key followed through the session to its new string: licensed with the
         * activation this machine took (the new key checked here, as the app then would). */
        must(polar_license_client_follow_rotation(held, key, &p));
        if (polar_license_portal_result_error(p) == POLAR_LICENSE_PORTAL_ERROR_NONE) {
          polar_license_result *checked = NULL;
          int kept = mine[0] != '\0' &&
                     strcmp(polar_license_portal_result_activation_id(p), mine) == 0;
          must(polar_license_client_check(held, polar_license_portal_result_new_key(p), &checked));
          kept = kept && strcmp(polar_license_result_activation_id(checked), mine) == 0;
          snprintf(g, sizeof g, "followed:%s,activation:%s",
                   polar_license_result_outcome(checked) == POLAR_LICENSE_OUTCOME_LICENSED
                       ? "licensed"
                       : polar_license_reason_code(polar_license_result_reason(checked)),
                   kept ? "kept" : "changed");
          polar_license_result_free(checked);
        } else if (polar_license_portal_result_error(p) == POLAR_LICENSE_PORTAL_ERROR_REFUSED &&
                   polar_license_portal_result_reason(p) != POLAR_LICENSE_REASON_NONE) {
          snprintf(g, sizeof g, "followed:%s,activation:changed",
                   polar_license_reason_code(polar_license_portal_result_reason(p)));
        } else {
          snprintf(g, sizeof g, "%s", polar_license_portal_result_code(p));
        }
        STEP_CELL(g);
      } else {
        /* free_other: the oldest device the session lists that is not this machine's. */
        size_t k, count;
        polar_license_result *freed = NULL;
        const char *id = NULL;
        must(polar_license_client_list_devices(held, key, &p));
        count = polar_license_portal_result_device_count(p);
        for (k = 0; k < count && id == NULL; k++)
          if (!polar_license_portal_result_device_this_machine(p, k))
            id = polar_license_portal_result_device_id(p, k);
        if (id != NULL) must(polar_license_client_free_device(held, key, id, &freed));
        if (freed == NULL || polar_license_result_outcome(freed) != POLAR_LICENSE_OUTCOME_DONE) {
          fprintf(stderr, "%s: step %d: free another failed\n", row->id, i);
          failed = 1;
        }
        polar_license_result_free(freed);
      }
      polar_license_portal_result_free(p);
      continue;
    }
    c = app(row, dir, start, offset);
    if (strcmp(s->what, "try_activate") == 0) {
      char g[256];
      r = activate_labeled(c, key, "This laptop");
      snprintf(g, sizeof g, "%s",
               polar_license_result_outcome(r) == POLAR_LICENSE_OUTCOME_DONE
                   ? "activated"
                   : polar_license_reason_code(polar_license_result_reason(r)));
      if (polar_license_result_outcome(r) == POLAR_LICENSE_OUTCOME_DONE)
        snprintf(mine, sizeof mine, "%s", polar_license_result_activation_id(r));
      if (strcmp(g, s->expected) != 0) {
        fprintf(stderr, "%s: step %d: expected `%s`, got `%s`\n", row->id, i, s->expected, g);
        failed = 1;
      }
      CHECK_STR(g, s->expected);
    } else if (strcmp(s->what, "activate") == 0) {
      r = activate_labeled(c, key, "laptop");
      if (polar_license_result_outcome(r) != POLAR_LICENSE_OUTCOME_DONE) {
        fprintf(stderr, "%s: step %d: activate: %s\n", row->id, i,
                polar_license_reason_code(polar_license_result_reason(r)));
        failed = 1;
      }
    } else if (strcmp(s->what, "check") == 0 || strcmp(s->what, "trial") == 0) {
      if (strcmp(s->what, "check") == 0)
        must(polar_license_client_check(c, key, &r));
      else
        must(polar_license_client_check_trial(c, &r));
      if (strcmp(s->expected, "-") != 0) {
        char g[256];
        render(row, r, start, g);
        STEP_CELL(g);
      }
    } else {
      fprintf(stderr, "%s: unknown step %s\n", row->id, s->what);
      failed = 1;
    }
    polar_license_result_free(r);
    polar_license_client_free(c);
  }
  polar_license_client_free(held);
  emu_stop_private(relay_pid);
  emu_fault(NULL);
  set_polar_clock(0);
  /* The suite's emulator is shared: its limits off again, no address left blocked. */
  if (row->rate_limit) set_rate_limit(0);
  remove_tree(dir);
  remove_tree(relay_dir);
  CHECK(!failed);
  fprintf(tsv, "c\t%s\t%s\t%s\t%s\n", row->id, expected, got,
          !failed && expected[0] ? "pass" : "FAIL");
}

static void make_parents(const char *path) {
  char d[512];
  char *slash;
  snprintf(d, sizeof d, "%s", path);
  for (slash = strchr(d + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(d, 0755) != 0 && errno != EEXIST) perror(d);
    *slash = '/';
  }
}

/* Splits `line` at tabs into at most `max` fields (in place); returns how many. */
static int split(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  line[strcspn(line, "\r\n")] = '\0';
  while (n < max) {
    f[n++] = p;
    p = strchr(p, '\t');
    if (p == NULL) break;
    *p++ = '\0';
  }
  return n;
}

static struct row rows[64];
static int n_rows;
static struct vrow vrows[16];
static int n_vrows;

static void read_rows(const char *path) {
  char line[1024];
  char *f[15];
  FILE *in = fopen(path, "r");
  if (in == NULL) {
    perror(path);
    stop("no flattened seller rows (POLAR_SELLER_ROWS)");
  }
  while (fgets(line, sizeof line, in) != NULL) {
    int n = split(line, f, 15);
    if (n == 15 && strcmp(f[0], "row") == 0 && n_rows < 64) {
      struct row *r = &rows[n_rows++];
      memset(r, 0, sizeof *r);
      snprintf(r->id, sizeof r->id, "%s", f[1]);
      snprintf(r->expires_day, sizeof r->expires_day, "%s", f[3]);
      snprintf(r->benefit, sizeof r->benefit, "%s", f[4]);
      snprintf(r->sub_status, sizeof r->sub_status, "%s", f[5]);
      snprintf(r->period_end_day, sizeof r->period_end_day, "%s", f[6]);
      r->cancel = atoi(f[7]);
      snprintf(r->ends_day, sizeof r->ends_day, "%s", f[8]);
      snprintf(r->released_day, sizeof r->released_day, "%s", f[9]);
      r->trial_days = atoi(f[10]);
      r->trial_benefit = atoi(f[11]);
      r->limit_activations = atoi(f[12]);
      r->customer_admin = atoi(f[13]);
      r->rate_limit = atoi(f[14]);
    } else if (n == 6 && strcmp(f[0], "step") == 0 && n_rows > 0) {
      struct row *r = &rows[n_rows - 1];
      struct step *s;
      if (r->n_steps >= MAX_STEPS) stop("too many steps");
      s = &r->steps[r->n_steps++];
      snprintf(s->what, sizeof s->what, "%s", f[1]);
      s->day = strcmp(f[2], "-") == 0 ? 0 : atof(f[2]);
      s->cell = atoi(f[3]);
      snprintf(s->expected, sizeof s->expected, "%s", f[4]);
      s->times = atoi(f[5]);
      if (strcmp(s->what, "sign_in") == 0 || strcmp(s->what, "devices_relay") == 0 ||
          strcmp(s->what, "request_codes") == 0)
        r->devices = 1;
    } else if (n == 3 && strcmp(f[0], "vrow") == 0 && n_vrows < 16) {
      struct vrow *r = &vrows[n_vrows++];
      memset(r, 0, sizeof *r);
      snprintf(r->id, sizeof r->id, "%s", f[1]);
      snprintf(r->hosts, sizeof r->hosts, "%s", f[2]);
    } else if (n == 10 && strcmp(f[0], "vstep") == 0 && n_vrows > 0) {
      struct vrow *r = &vrows[n_vrows - 1];
      struct vstep *s;
      if (r->n_steps >= MAX_VSTEPS) stop("too many values steps");
      s = &r->steps[r->n_steps++];
      snprintf(s->what, sizeof s->what, "%s", f[1]);
      snprintf(s->key, sizeof s->key, "%s", f[2]);
      snprintf(s->relay, sizeof s->relay, "%s", f[3]);
      snprintf(s->name, sizeof s->name, "%s", f[4]);
      snprintf(s->units, sizeof s->units, "%s", f[5]);
      snprintf(s->id, sizeof s->id, "%s", f[6]);
      s->cell = atoi(f[7]);
      snprintf(s->expected, sizeof s->expected, "%s", f[8]);
      snprintf(s->json, sizeof s->json, "%s", f[9]);
    } else {
      fprintf(stderr, "seller rows: a line that is no row: %s\n", line);
      stop("bad seller rows");
    }
  }
  fclose(in);
}

/* The values rows' Polar (tests/js/values-world.mjs on one relay host, VALUES_WORLD_FLAT=1):
 * its process, its pipes and what its hello said. */
struct world {
  pid_t pid;
  FILE *to, *from;
  char pair[256], meter[64];
  char relay_name[2][8], relay_url[2][64];
  char key_name[16][16], key[16][64];
  int n_relays, n_keys;
};

static const char *world_relay(const struct world *w, const char *name) {
  int i;
  for (i = 0; i < w->n_relays; i++)
    if (strcmp(w->relay_name[i], name) == 0) return w->relay_url[i];
  return "";
}

static const char *world_key(const struct world *w, const char *name) {
  int i;
  for (i = 0; i < w->n_keys; i++)
    if (strcmp(w->key_name[i], name) == 0) return w->key[i];
  return "";
}

/* Starts the world on `host` (node, POLAR_LICENSE_CLI as its POLAR_CLI); 0 when it is ready. */
static int world_start(struct world *w, const char *host) {
  int in[2], out[2];
  char line[1024];
  char *f[4];
  const char *cli = getenv("POLAR_LICENSE_CLI");
  const char *root = getenv("POLAR_SELLER_ROOT");
  char script[512];
  memset(w, 0, sizeof *w);
  if (cli == NULL || root == NULL) return -1;
  snprintf(script, sizeof script, "%s/tests/js/values-world.mjs", root);
  if (pipe(in) != 0 || pipe(out) != 0) return -1;
  w->pid = fork();
  if (w->pid < 0) return -1;
  if (w->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    setenv("POLAR_CLI", cli, 1);
    setenv("VALUES_WORLD_FLAT", "1", 1);
    execlp("node", "node", script, host, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  w->to = fdopen(in[1], "w");
  w->from = fdopen(out[0], "r");
  while (fgets(line, sizeof line, w->from) != NULL) {
    int n = split(line, f, 4);
    if (strcmp(f[0], "ready") == 0) return 0;
    if (n == 2 && strcmp(f[0], "pair") == 0) snprintf(w->pair, sizeof w->pair, "%s", f[1]);
    if (n == 2 && strcmp(f[0], "meter") == 0) snprintf(w->meter, sizeof w->meter, "%s", f[1]);
    if (n == 3 && strcmp(f[0], "relay") == 0 && w->n_relays < 2) {
      snprintf(w->relay_name[w->n_relays], 8, "%s", f[1]);
      snprintf(w->relay_url[w->n_relays++], 64, "%s", f[2]);
    }
    if (n == 3 && strcmp(f[0], "key") == 0 && w->n_keys < 16) {
      snprintf(w->key_name[w->n_keys], 16, "%s", f[1]);
      snprintf(w->key[w->n_keys++], 64, "%s", f[2]);
    }
    if (strcmp(f[0], "error") == 0) fprintf(stderr, "values world: %s\n", n > 1 ? f[1] : "");
  }
  return -1;
}

static void world_stop(struct world *w) {
  int status;
  if (w->to != NULL) fclose(w->to);
  if (w->from != NULL) fclose(w->from);
  if (w->pid > 0) waitpid(w->pid, &status, 0);
}

/* Plays a Polar step: 0 and, when it reads Polar, `got`; -1 on the world's error. */
static int world_step(struct world *w, const char *json, char got[96]) {
  char line[1024];
  char *f[2];
  got[0] = '\0';
  fprintf(w->to, "%s\n", json);
  fflush(w->to);
  if (fgets(line, sizeof line, w->from) == NULL) return -1;
  if (split(line, f, 2) == 2 && strcmp(f[0], "got") == 0) snprintf(got, 96, "%s", f[1]);
  return strcmp(f[0], "error") == 0 ? -1 : 0;
}

/* The face's client at `relay`: signed mode with the relay's key, every check asking it. */
static polar_license_client *values_client(const struct world *w, const char *relay,
                                           const char *dir) {
  polar_license_config *config = demo_config(relay, dir);
  must(polar_license_config_set_relay_keys(config, w->pair));
  must(polar_license_config_set_grace_policy(config, 0, 7 * DAY, 600));
  return client_of(config);
}

static const char *stop_kind(polar_license_stopped k) {
  switch (k) {
    case POLAR_LICENSE_STOPPED_PAUSED: return "paused";
    case POLAR_LICENSE_STOPPED_CANCELED: return "canceled";
    case POLAR_LICENSE_STOPPED_SEAT_REVOKED: return "seat_revoked";
    case POLAR_LICENSE_STOPPED_REFUNDED: return "refunded";
    case POLAR_LICENSE_STOPPED_ROTATED: return "rotated";
    case POLAR_LICENSE_STOPPED_PAST_DUE: return "past_due";
    default: return NULL;
  }
}

/* A number as the table shows it: an integer bare, else %g. */
static void number(double v, char out[32]) {
  if (v == (double)(long long)v)
    snprintf(out, 32, "%lld", (long long)v);
  else
    snprintf(out, 32, "%g", v);
}

/* value: a check through the relay, then the entitlement `name` of its result. */
static void face_value(polar_license_client *c, const char *key, const char *name, char out[96]) {
  polar_license_result *r = NULL;
  int64_t i;
  double d;
  bool b;
  must(polar_license_client_check(c, key, &r));
  switch (polar_license_result_entitlement(r, name)) {
    case POLAR_LICENSE_ENTITLEMENT_STRING:
      snprintf(out, 96, "%s", polar_license_result_entitlement_string(r, name));
      break;
    case POLAR_LICENSE_ENTITLEMENT_INT:
      polar_license_result_entitlement_int(r, name, &i);
      snprintf(out, 96, "%lld", (long long)i);
      break;
    case POLAR_LICENSE_ENTITLEMENT_FLOAT:
      polar_license_result_entitlement_float(r, name, &d);
      snprintf(out, 96, "%g", d);
      break;
    case POLAR_LICENSE_ENTITLEMENT_BOOL:
      polar_license_result_entitlement_bool(r, name, &b);
      snprintf(out, 96, "%s", b ? "true" : "false");
      break;
    default:
      snprintf(out, 96, "absent");
  }
  polar_license_result_free(r);
}

/* relay_check: licensed, or the code · the typed detail (until= when known), or the code. */
static void face_check(polar_license_client *c, const char *key, char out[96]) {
  polar_license_result *r = NULL;
  const char *kind;
  must(polar_license_client_check(c, key, &r));
  kind = stop_kind(polar_license_result_stopped(r));
  if (polar_license_result_outcome(r) == POLAR_LICENSE_OUTCOME_LICENSED)
    snprintf(out, 96, "licensed");
  else if (kind == NULL)
    snprintf(out, 96, "%s", polar_license_reason_code(polar_license_result_reason(r)));
  else if (polar_license_result_stopped_until(r) >= 0)
    snprintf(out, 96, "%s · %s until=%lld", polar_license_reason_code(polar_license_result_reason(r)),
             kind, (long long)polar_license_result_stopped_until(r));
  else
    snprintf(out, 96, "%s · %s", polar_license_reason_code(polar_license_result_reason(r)), kind);
  polar_license_result_free(r);
}

/* usage: recorded|duplicate balance:N, credits_exhausted balance:N, or the reason's code. */
static void face_usage(polar_license_client *c, const char *key, const char *meter, double units,
                       const char *id, char out[96]) {
  polar_license_usage_result *u = NULL;
  double balance;
  char shown[32] = "?";
  polar_license_usage_error e;
  must(polar_license_client_record_usage(c, key, meter, units, id, &u));
  if (polar_license_usage_result_balance(u, &balance)) number(balance, shown);
  e = polar_license_usage_result_error(u);
  if (e == POLAR_LICENSE_USAGE_ERROR_NONE)
    snprintf(out, 96, "%s balance:%s", polar_license_usage_result_duplicate(u) ? "duplicate" : "recorded",
             shown);
  else if (e == POLAR_LICENSE_USAGE_ERROR_CREDITS_EXHAUSTED)
    snprintf(out, 96, "credits_exhausted balance:%s", shown);
  else
    snprintf(out, 96, "%s", polar_license_reason_code(polar_license_usage_result_reason(u)));
  polar_license_usage_result_free(u);
}

/* The values rows on `host`, in order on one world; a row each in the TSV as ID@HOST. */
static void values_rows(const char *host) {
  struct world w;
  polar_license_client *plain = NULL, *ruled = NULL;
  char dir[64];
  int ri, started;
  temp_dir(dir);
  started = world_start(&w, host) == 0;
  CHECK(started);
  if (started) {
    char sub[96];
    snprintf(sub, sizeof sub, "%s/plain", dir);
    plain = values_client(&w, world_relay(&w, "plain"), sub);
    snprintf(sub, sizeof sub, "%s/rule", dir);
    ruled = values_client(&w, world_relay(&w, "rule"), sub);
  }
  for (ri = 0; ri < n_vrows; ri++) {
    const struct vrow *row = &vrows[ri];
    char expected[96] = "", got[96] = "";
    int i, failed = !started, cell_set = 0;
    if (strstr(row->hosts, host) == NULL) continue;
    for (i = 0; started && i < row->n_steps; i++) {
      const struct vstep *s = &row->steps[i];
      polar_license_client *c = strcmp(s->relay, "rule") == 0 ? ruled : plain;
      const char *key = world_key(&w, s->key);
      char g[96] = "";
      int polled = strcmp(s->what, "value") == 0 || strcmp(s->what, "relay_check") == 0;
      if (strcmp(s->what, "usage") == 0) {
        face_usage(c, key, w.meter, atof(s->units), s->id, g);
      } else if (polled) {
        /* Until the expected answer, 10 s at most (the relay reads, webhooks arrive). */
        int tries;
        for (tries = 0; tries < 200; tries++) {
          struct timespec pause = {0, 50000000L};
          if (strcmp(s->what, "value") == 0)
            face_value(c, key, s->name, g);
          else
            face_check(c, key, g);
          if (strcmp(g, s->expected) == 0) break;
          nanosleep(&pause, NULL);
        }
      } else if (world_step(&w, s->json, g) != 0) {
        fprintf(stderr, "%s@%s: step %d (%s): the world failed\n", row->id, host, i, s->what);
        failed = 1;
        break;
      }
      if (strcmp(s->expected, "-") == 0) continue;
      if (strcmp(g, s->expected) != 0) {
        fprintf(stderr, "%s@%s: step %d (%s): expected `%s`, got `%s`\n", row->id, host, i, s->what,
                s->expected, g);
        failed = 1;
      }
      CHECK_STR(g, s->expected);
      if (!cell_set) {
        snprintf(got, sizeof got, "%s", g);
        snprintf(expected, sizeof expected, "%s", s->expected);
        if (s->cell) cell_set = 1;
      }
    }
    CHECK(!failed);
    fprintf(tsv, "c\t%s@%s\t%s\t%s\t%s\n", row->id, host, expected, got,
            !failed && expected[0] ? "pass" : "FAIL");
  }
  polar_license_client_free(plain);
  polar_license_client_free(ruled);
  if (started) world_stop(&w);
  remove_tree(dir);
}

/* POLAR_SELLER_ONLY=workers: only the values rows' Workers cells. */
static int workers_only(void) {
  const char *only = getenv("POLAR_SELLER_ONLY");
  return only != NULL && strcmp(only, "workers") == 0;
}

/* Whether the Workers relay can run: the installed npm package ($CONSUMER) and scripts/npm's
 * workerd (as the Rust runners' values_hosts). */
static int workers_there(void) {
  const char *consumer = getenv("CONSUMER");
  const char *root = getenv("POLAR_SELLER_ROOT");
  char path[1024];
  struct stat st;
  if (consumer == NULL || consumer[0] == '\0' || root == NULL) return 0;
  snprintf(path, sizeof path, "%s/node_modules/polar-license", consumer);
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
  snprintf(path, sizeof path, "%s/scripts/npm/node_modules/.bin/workerd", root);
  return access(path, X_OK) == 0;
}

static void seller_table(void) {
  int i;
  const char *values = getenv("POLAR_SELLER_VALUES");
  CHECK(n_rows >= 11);
  for (i = 0; i < n_rows; i++) run_row(&rows[i]);
  /* The values rows (issue #68) on the native relay (`relay serve`), and on the Workers relay
   * when it can run; not under valgrind (POLAR_SELLER_VALUES=0: its polls are bounded in
   * time, its rows the plain run's). */
  if (n_vrows > 0 && (values == NULL || strcmp(values, "0") != 0)) {
    values_rows("native");
    if (workers_there()) values_rows("workers");
  }
}

/* The rows of the TSV at `path` (its header left out) that are no Workers cell (ID@workers),
 * as one text to free; NULL when there is no such file. */
static char *other_rows(const char *path) {
  char line[1024], *text = NULL;
  size_t size = 0;
  FILE *in = fopen(path, "r"), *kept;
  if (in == NULL) return NULL;
  kept = open_memstream(&text, &size);
  if (kept == NULL) stop("open_memstream");
  if (fgets(line, sizeof line, in) != NULL) {
    while (fgets(line, sizeof line, in) != NULL) {
      char *id = strchr(line, '\t'), *end = id == NULL ? NULL : strchr(id + 1, '\t');
      if (end != NULL && end - id > 8 && strncmp(end - 8, "@workers", 8) == 0) continue;
      fputs(line, kept);
    }
  }
  fclose(in);
  fclose(kept);
  return text;
}

int main(void) {
  const char *in = getenv("POLAR_SELLER_ROWS");
  const char *out = getenv("POLAR_SELLER_TABLE_OUT");
  char *kept = NULL;
  int status;
  if (in == NULL || in[0] == '\0') in = "target/c/seller-rows.tsv";
  if (out == NULL || out[0] == '\0') out = "target/seller-table/c.tsv";
  read_rows(in);
  make_parents(out);
  /* Only the Workers cells: the file's other rows kept, before them. */
  if (workers_only()) kept = other_rows(out);
  tsv = fopen(out, "w");
  if (tsv == NULL) {
    perror(out);
    return 2;
  }
  fprintf(tsv, "face\trow\texpected\tgot\tresult\n");
  if (kept != NULL) fputs(kept, tsv);
  free(kept);
  if (workers_only()) {
    /* No row against the suite's emulator: not through RUN, which resets its faults. */
    CHECK(n_vrows > 0);
    values_rows("workers");
    status = harness_current_failures() == 0 ? 0 : 1;
    printf("%s - the Workers cells\n", status == 0 ? "ok" : "not ok");
  } else {
    RUN(seller_table);
    status = harness_summary("test_seller_table");
  }
  fclose(tsv);
  return status;
}
