/*
 * test_trials.c: trials (issue #54 item 4) through the C API, against the suite's emulator
 * (API version 2027-01). polar_license_config_set_trial states a local trial: with no key, the
 * first polar_license_client_check_trial (or _check_remembered) starts it, later ones count it
 * down, a clock set back during it is CLOCK_ROLLBACK, after its days it has ended, an edited
 * record is refused. A key whose subscription is `trialing`, or of a benefit named with
 * polar_license_config_add_trial_benefit, is licensed and reported as a trial with its end; a
 * revoked one is not. (tests/trials.rs covers the rule on the Rust face.)
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define HOUR 3600
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)

/* `at` (unix seconds) as RFC 3339 (`…Z`). */
static void when(long long at, char out[32]) {
  time_t t = (time_t)at;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A client of the emulator with its cache in `dir`, its clock moved by `offset`, every check
 * asking Polar (revalidate 0), with a local trial of `days` (0: none) and the trial benefit
 * `benefit` (NULL: none). */
static polar_license_client *app(const char *dir, int64_t offset, uint32_t days,
                                 const char *benefit) {
  polar_license_config *config = demo_config(emu_url(), dir);
  must(polar_license_config_set_grace_policy(config, 0, WEEK, 0));
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  if (days > 0) must(polar_license_config_set_trial(config, days));
  if (benefit != NULL) must(polar_license_config_add_trial_benefit(config, benefit));
  return client_of(config);
}

/* CHECKED of `key` through `client`, an answer that is no trial (three checks); freed. */
#define CHECKED_NO_TRIAL(client, key, outcome, reason)                                            \
  do {                                                                                            \
    polar_license_result *no_trial_ = CHECKED((client), (key), (outcome), (reason));              \
    CHECK_INT(polar_license_result_trial(no_trial_), POLAR_LICENSE_TRIAL_NONE);                   \
    polar_license_result_free(no_trial_);                                                         \
  } while (0)

/* The local trial's answer of a client with `days` at `offset`. */
static polar_license_result *trial_at(const char *dir, int64_t offset, uint32_t days) {
  polar_license_client *c = app(dir, offset, days, NULL);
  polar_license_result *r = NULL;
  must(polar_license_client_check_trial(c, &r));
  polar_license_client_free(c);
  return r;
}

static void a_local_trial_starts_counts_down_refuses_a_clock_set_back_and_ends(void) {
  char dir[64];
  polar_license_client *c;
  polar_license_result *r;
  long long now = (long long)time(NULL);
  long before = emu_request_count();
  temp_dir(dir);

  /* The first check with no key starts it; the outcome still asks for a key. */
  r = trial_at(dir, 0, 14);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ACTIVE);
  CHECK(polar_license_result_trial_local(r));
  CHECK_INT(polar_license_result_trial_days_left(r), 14);
  CHECK(polar_license_result_trial_ends_at(r) >= now + 14 * DAY &&
        polar_license_result_trial_ends_at(r) <= now + 14 * DAY + 60);
  polar_license_result_free(r);

  /* Three days on, through check_remembered (no key remembered): 11 days left. */
  c = app(dir, 3 * DAY + 60, 14, NULL);
  must(polar_license_client_check_remembered(c, &r));
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ACTIVE);
  CHECK_INT(polar_license_result_trial_days_left(r), 11);
  polar_license_result_free(r);
  polar_license_client_free(c);

  /* The clock set back two days: refused, clock_rollback. */
  r = trial_at(dir, DAY, 14);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_REFUSED);
  CHECK_INT(polar_license_result_trial_days_left(r), 0);
  polar_license_result_free(r);

  /* After 14 days: ended. */
  r = trial_at(dir, 14 * DAY + 120, 14);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ENDED);
  CHECK_INT(polar_license_result_trial_days_left(r), 0);
  polar_license_result_free(r);

  /* No trial set: invalid input (field trial), no trial. */
  r = trial_at(dir, 0, 0);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_NONE);
  CHECK_INT(polar_license_result_trial_ends_at(r), -1);
  polar_license_result_free(r);

  /* A local trial never asks Polar. */
  CHECK_INT(emu_request_count(), before);
  remove_tree(dir);
}

/* Flips the last hex digit of the MAC line of the trial record in `dir`; 1 when done. */
static int edit_trial_record(const char *dir) {
  char path[512], text[512];
  struct dirent *e;
  DIR *d = opendir(dir);
  FILE *f;
  size_t n;
  int done = 0;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL && !done) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "trial-", 6) != 0 || len < 6 || strcmp(e->d_name + len - 6, ".cache"))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    f = fopen(path, "rb");
    if (f == NULL) break;
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    if (n < 2 || text[n - 1] != '\n') break;
    text[n - 2] = text[n - 2] == '0' ? '1' : '0';
    f = fopen(path, "wb");
    if (f == NULL) break;
    done = fwrite(text, 1, n, f) == n;
    fclose(f);
  }
  closedir(d);
  return done;
}

static void an_edited_trial_record_is_refused(void) {
  char dir[64];
  polar_license_result *r;
  temp_dir(dir);
  r = trial_at(dir, 0, 30);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ACTIVE);
  polar_license_result_free(r);
  CHECK(edit_trial_record(dir));
  r = trial_at(dir, 60, 30);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_REFUSED);
  CHECK_INT(polar_license_result_trial_days_left(r), 0);
  polar_license_result_free(r);
  remove_tree(dir);
}

static void a_trialing_subscription_is_a_trial_and_a_revoked_key_is_not(void) {
  char dir[64], key[64], fields[256], end_at[32];
  polar_license_client *c, *plain;
  polar_license_result *r;
  long long end = (long long)time(NULL) + 5 * DAY + HOUR;
  when(end, end_at);
  snprintf(fields, sizeof fields,
           "\"subscription\":{\"status\":\"trialing\",\"current_period_end\":\"%s\"}", end_at);
  emu_new_key(fields, key);
  temp_dir(dir);
  c = app(dir, 0, 14, NULL);
  plain = app(dir, 0, 0, NULL);

  r = CHECKED(c, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ACTIVE);
  CHECK(!polar_license_result_trial_local(r));
  CHECK_INT(polar_license_result_trial_ends_at(r), end);
  CHECK_INT(polar_license_result_trial_days_left(r), 6);
  polar_license_result_free(r);
  /* No trial set: the same answer, no trial. */
  CHECKED_NO_TRIAL(plain, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);

  /* Revoked: denied, no trial. */
  emu_patch_key(key, "{\"status\":\"revoked\"}");
  CHECKED_NO_TRIAL(c, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  polar_license_client_free(plain);
  client_done(c, dir);
}

static void a_named_trial_benefit_is_a_trial_with_the_keys_expiry(void) {
  char dir[64], key[64], fields[96], at[32];
  polar_license_client *c, *other;
  polar_license_result *r;
  long long expires = (long long)time(NULL) + 10 * DAY;
  when(expires, at);
  snprintf(fields, sizeof fields, "\"expires_at\":\"%s\"", at);
  emu_new_key_on(OTHER_UUID, fields, key);
  temp_dir(dir);
  c = app(dir, 0, 0, OTHER_UUID);
  other = app(dir, 0, 0, DEMO_BENEFIT);
  r = CHECKED(c, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_trial(r), POLAR_LICENSE_TRIAL_ACTIVE);
  CHECK_INT(polar_license_result_trial_ends_at(r), expires);
  CHECK_INT(polar_license_result_trial_days_left(r), 10);
  polar_license_result_free(r);
  CHECKED_NO_TRIAL(other, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_client_free(other);
  client_done(c, dir);
}

static void trial_settings_are_checked(void) {
  polar_license_config *config = new_config();
  CHECK_INT(polar_license_config_set_trial(config, 3651), POLAR_LICENSE_STATUS_INVALID_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "trial") != NULL);
  CHECK_INT(polar_license_config_set_trial(config, 14), POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_config_set_trial(config, 0), POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_config_set_trial(NULL, 14), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_config_add_trial_benefit(config, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  polar_license_config_free(config);
  CHECK_INT(polar_license_result_trial(NULL), POLAR_LICENSE_TRIAL_NONE);
  CHECK(!polar_license_result_trial_local(NULL));
  CHECK_INT(polar_license_result_trial_days_left(NULL), 0);
  CHECK_INT(polar_license_result_trial_ends_at(NULL), -1);
}

int main(void) {
  RUN(a_local_trial_starts_counts_down_refuses_a_clock_set_back_and_ends);
  RUN(an_edited_trial_record_is_refused);
  RUN(a_trialing_subscription_is_a_trial_and_a_revoked_key_is_not);
  RUN(a_named_trial_benefit_is_a_trial_with_the_keys_expiry);
  RUN(trial_settings_are_checked);
  return harness_summary("test_trials");
}
