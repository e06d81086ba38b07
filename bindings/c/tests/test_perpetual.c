/*
 * test_perpetual.c: perpetual fallback (issue #54 item 3) through the C API, against the
 * suite's emulator. polar_license_config_set_released states the build's release date; an
 * expired key then licenses a build released on or before the date it was paid through, with
 * polar_license_result_fallback true and polar_license_result_paid_through that date; a newer
 * build is expired as without it; a revoked key never falls back; a cached expires_at passed
 * while Polar is unreachable falls back from the cache within the grace period.
 * (tests/perpetual.rs covers the rule on the Rust face.)
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define HOUR 3600
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)

/* `at` (unix seconds) as RFC 3339 (`…Z`) or as its day (`YYYY-MM-DD`). */
static void when(long long at, int day_only, char out[32]) {
  time_t t = (time_t)at;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, day_only ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A client of the emulator with its cache in `dir`, its clock moved by `offset`, every check
 * asking Polar (revalidate 0), for a build released on `released` (NULL: none stated). */
/* A fresh key whose expires_at is `at` (unix seconds). */
static void key_expiring(long long at, char key[64]) {
  char date[32], fields[96];
  when(at, 0, date);
  snprintf(fields, sizeof fields, "\"expires_at\":\"%s\"", date);
  emu_new_key(fields, key);
}

static polar_license_client *app(const char *dir, int64_t offset, const char *released) {
  polar_license_config *config = demo_config(emu_url(), dir);
  must(polar_license_config_set_grace_policy(config, 0, WEEK, 0));
  must(polar_license_config_set_clock_offset_for_testing(config, offset));
  if (released != NULL) must(polar_license_config_set_released(config, released));
  return client_of(config);
}

static void an_expired_key_licenses_older_builds(void) {
  char dir[64], key[64], fields[96], old_day[32], new_day[32], past[32];
  polar_license_client *old_build, *new_build, *plain;
  polar_license_result *r;
  long long now = (long long)time(NULL);
  long long expires = now + DAY;
  key_expiring(expires, key);
  temp_dir(dir);
  when(now - 10 * DAY, 1, old_day);
  when(expires + 2 * DAY, 1, new_day);
  old_build = app(dir, 0, old_day);
  new_build = app(dir, 0, new_day);
  plain = app(dir, 0, NULL);

  /* Before the expiry: licensed, with the paid-through date; an update's question. */
  r = CHECKED(old_build, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK(!polar_license_result_fallback(r));
  CHECK_INT(polar_license_result_paid_through(r), expires);
  CHECK(polar_license_result_covers(r, expires));
  CHECK(!polar_license_result_covers(r, expires + DAY));
  polar_license_result_free(r);

  /* The seller ends the key now; Polar says "License key has expired.": the older build stays
   * licensed, online. */
  when(now - 60, 0, past);
  snprintf(fields, sizeof fields, "{\"expires_at\":\"%s\"}", past);
  emu_patch_key(key, fields);
  r = CHECKED(old_build, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(polar_license_result_fallback(r));
  /* The seller moved the expiry earlier than the last good answer said: paid through the
   * moment Polar said expired, at the latest. */
  CHECK(polar_license_result_paid_through(r) >= now && polar_license_result_paid_through(r) < expires);
  polar_license_result_free(r);

  /* A newer build, or none stated: expired, as today. */
  r = CHECKED(new_build, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_EXPIRED);
  CHECK(!polar_license_result_fallback(r));
  CHECK(polar_license_result_covers(r, now - 10 * DAY));
  polar_license_result_free(r);
  r = CHECKED(plain, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_EXPIRED);
  CHECK(!polar_license_result_fallback(r));
  polar_license_result_free(r);

  /* Revoked: never a fallback. */
  emu_patch_key(key, "{\"status\":\"revoked\"}");
  r = CHECKED(old_build, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  CHECK(!polar_license_result_fallback(r));
  polar_license_result_free(r);

  polar_license_client_free(new_build);
  polar_license_client_free(plain);
  client_done(old_build, dir);
}

static void a_cached_expiry_passed_offline_falls_back_from_the_cache(void) {
  char dir[64], key[64], old_day[32];
  polar_license_client *today, *later, *later_plain, *too_late;
  polar_license_result *r;
  long long now = (long long)time(NULL);
  long long expires = now + DAY;
  key_expiring(expires, key);
  temp_dir(dir);
  when(now, 1, old_day);
  today = app(dir, 0, old_day);
  EXPECT_CHECK(today, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);

  /* Two days on, Polar unreachable: the cached expires_at has passed. */
  emu_fault("{\"kind\":\"close_immediately\"}");
  later = app(dir, 2 * DAY, old_day);
  later_plain = app(dir, 2 * DAY, NULL);
  r = CHECKED(later_plain, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  CHECK(!polar_license_result_fallback(r));
  CHECK_INT(polar_license_result_paid_through(r), -1);
  polar_license_result_free(r);
  r = check(later, key);
  CHECK_INT(polar_license_result_outcome(r), POLAR_LICENSE_OUTCOME_LICENSED);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
  CHECK(polar_license_result_fallback(r));
  CHECK_INT(polar_license_result_paid_through(r), expires);
  CHECK(polar_license_result_grace_remaining_seconds(r) > 4 * DAY);
  polar_license_result_free(r);

  /* Past the grace period: no fallback. */
  too_late = app(dir, 8 * DAY, old_day);
  r = check(too_late, key);
  CHECK(!polar_license_result_is_licensed(r));
  CHECK(!polar_license_result_fallback(r));
  polar_license_result_free(r);
  emu_fault(NULL);

  polar_license_client_free(later);
  polar_license_client_free(later_plain);
  polar_license_client_free(too_late);
  client_done(today, dir);
}

static void released_dates_are_checked(void) {
  polar_license_config *config = new_config();
  CHECK_INT(polar_license_config_set_released(config, "2026-02-30"),
            POLAR_LICENSE_STATUS_INVALID_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "released") != NULL);
  CHECK_INT(polar_license_config_set_released(config, "2026-10-01"), POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_config_set_released(config, NULL), POLAR_LICENSE_STATUS_OK);
  CHECK_INT(polar_license_config_set_released(NULL, "2026-10-01"),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  polar_license_config_free(config);
  CHECK(!polar_license_result_fallback(NULL));
  CHECK_INT(polar_license_result_paid_through(NULL), -1);
  CHECK(!polar_license_result_covers(NULL, 0));
}

int main(void) {
  RUN(an_expired_key_licenses_older_builds);
  RUN(a_cached_expiry_passed_offline_falls_back_from_the_cache);
  RUN(released_dates_are_checked);
  return harness_summary("test_perpetual");
}
