/*
 * test_features.c: feature gating through the C API (issue #7): granted by one of several
 * benefits, not granted by another, unknown feature, denied license, a cached verdict within
 * the grace period, metered features with uses left and with none, the map given entry by
 * entry or as JSON, an invalid map refused with the entry named, NULL arguments, and one
 * client and result asked from several threads at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define OK POLAR_LICENSE_STATUS_OK
#define NUL_ARG POLAR_LICENSE_STATUS_NULL_ARGUMENT
#define BAD_UTF8 POLAR_LICENSE_STATUS_INVALID_UTF8
#define BAD_INPUT POLAR_LICENSE_STATUS_INVALID_INPUT

#define HOUR 3600
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)

/* Three tiers (license-key benefits). */
#define PRO "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
#define TEAM "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e"
#define BASIC "2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f"

/* The map of tests/features.rs: pro_export from PRO or TEAM, team_sync from TEAM, and
 * api_calls from PRO, metered. */
#define MAP_JSON                                                                                  \
  "{\"pro_export\": [\"" PRO "\", \"" TEAM "\"], \"team_sync\": [\"" TEAM "\"],"                  \
  " \"api_calls\": {\"benefits\": [\"" PRO "\"], \"metered\": true}}"

static const char bad_utf8[] = {(char)0xff, (char)0xfe, 'x', 0};

/* A config for the emulator's demo organization (cache in `dir`, or the default for NULL). */
static polar_license_config *base_config(const char *dir, int64_t clock_offset) {
  polar_license_config *config = demo_config(emu_url(), dir);
  must(polar_license_config_set_timeout_ms(config, 5000));
  must(polar_license_config_set_grace_policy(config, HOUR, WEEK, 600));
  must(polar_license_config_set_clock_offset_for_testing(config, clock_offset));
  return config;
}

/* The map entry by entry (the metered mark before its benefit: any order works). */
static void add_map(polar_license_config *config) {
  must(polar_license_config_add_feature(config, "pro_export", PRO));
  must(polar_license_config_add_feature(config, "pro_export", TEAM));
  must(polar_license_config_add_feature(config, "team_sync", TEAM));
  must(polar_license_config_set_feature_metered(config, "api_calls", true));
  must(polar_license_config_add_feature(config, "api_calls", PRO));
}

/* A client with the map added entry by entry. */
static polar_license_client *gated_client(const char *dir, int64_t clock_offset) {
  polar_license_config *config = base_config(dir, clock_offset);
  add_map(config);
  return client_of(config);
}

static polar_license_result *validate(polar_license_client *client, const char *key,
                                      int64_t increment) {
  polar_license_request *request = new_request(key);
  polar_license_result *r = NULL;
  if (increment > 0) must(polar_license_request_set_increment_usage(request, increment));
  must(polar_license_client_validate(client, request, &r));
  polar_license_request_free(request);
  return r;
}

/* The question, with the call itself checked. */
static polar_license_feature_access *ask(polar_license_client *client,
                                         const polar_license_result *result,
                                         const char *feature) {
  polar_license_feature_access *access = NULL;
  polar_license_status status = polar_license_client_has_feature(client, result, feature, &access);
  CHECK_INT(status, OK);
  CHECK(access != NULL);
  CHECK_STR(polar_license_client_last_error(client), "");
  CHECK_STR(polar_license_feature_access_feature(access), feature);
  return access;
}

/* Checks a whole answer (a remaining of -999 means "no count"), then frees it. */
#define CHECK_ACCESS(access, granted, why, reason, source, remaining)                             \
  check_access(__FILE__, __LINE__, (access), (granted), (why), (reason), (source), (remaining))
#define NO_COUNT (-999)

static void check_access(const char *file, int line, polar_license_feature_access *access,
                         bool granted, polar_license_feature_why why, polar_license_reason reason,
                         polar_license_source source, int64_t remaining) {
  int64_t left = NO_COUNT;
  bool has_count = polar_license_feature_access_remaining_usage(access, &left);
  polar_license_feature_why got_why = polar_license_feature_access_why(access);
  char what[160];
  harness_count();
  snprintf(what, sizeof what, "%s: %s", polar_license_feature_access_feature(access),
           polar_license_feature_why_code(got_why));
  if (polar_license_feature_access_granted(access) != granted)
    harness_fail_int(file, line, what, polar_license_feature_access_granted(access), granted);
  if (got_why != why) harness_fail_int(file, line, what, got_why, why);
  if (polar_license_feature_access_license_reason(access) != reason)
    harness_fail_int(file, line, "license_reason",
                     polar_license_feature_access_license_reason(access), reason);
  if (polar_license_feature_access_source(access) != source)
    harness_fail_int(file, line, "source", polar_license_feature_access_source(access), source);
  if (has_count != (remaining != NO_COUNT) || left != remaining)
    harness_fail_int(file, line, "remaining_usage", has_count ? left : NO_COUNT, remaining);
  polar_license_feature_access_free(access);
}

/* The answers of the tests below, by why (no count but where one is given). */
#define USES_LEFT(access, source, left)                                                           \
  CHECK_ACCESS(access, true, POLAR_LICENSE_FEATURE_WHY_GRANTED, POLAR_LICENSE_REASON_NONE,        \
               source, left)
#define GRANTED(access, source) USES_LEFT(access, source, NO_COUNT)
#define NOT_VALID(access, reason)                                                                 \
  CHECK_ACCESS(access, false, POLAR_LICENSE_FEATURE_WHY_LICENSE_NOT_VALID, reason,                \
               POLAR_LICENSE_SOURCE_NONE, NO_COUNT)
#define NOT_IN_TIER(access, source)                                                               \
  CHECK_ACCESS(access, false, POLAR_LICENSE_FEATURE_WHY_NOT_GRANTED_BY_BENEFIT,                   \
               POLAR_LICENSE_REASON_NONE, source, NO_COUNT)
#define UNKNOWN(access, source)                                                                   \
  CHECK_ACCESS(access, false, POLAR_LICENSE_FEATURE_WHY_UNKNOWN_FEATURE,                          \
               POLAR_LICENSE_REASON_NONE, source, NO_COUNT)
#define EXHAUSTED(access, left)                                                                   \
  CHECK_ACCESS(access, false, POLAR_LICENSE_FEATURE_WHY_USAGE_EXHAUSTED,                          \
               POLAR_LICENSE_REASON_NONE, POLAR_LICENSE_SOURCE_ONLINE, left)

static void feature_whys_and_codes(void) {
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_NONE, 0);
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_GRANTED, 1);
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_LICENSE_NOT_VALID, 2);
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_NOT_GRANTED_BY_BENEFIT, 3);
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_UNKNOWN_FEATURE, 4);
  CHECK_INT(POLAR_LICENSE_FEATURE_WHY_USAGE_EXHAUSTED, 5);
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_NONE), "");
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_GRANTED), "granted");
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_LICENSE_NOT_VALID),
            "license_not_valid");
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_NOT_GRANTED_BY_BENEFIT),
            "not_granted_by_benefit");
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_UNKNOWN_FEATURE),
            "unknown_feature");
  CHECK_STR(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_USAGE_EXHAUSTED),
            "usage_exhausted");
  CHECK_STR(polar_license_feature_why_code(6), "");
  CHECK_STR(polar_license_feature_why_code(0xffffffffu), "");
}

/* pro_export comes from PRO or TEAM; team_sync only from TEAM. */
static void granted_by_one_of_several_benefits(void) {
  char pro[64], team[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "", pro);
  emu_new_key_on(TEAM, "", team);
  r = check(client, pro);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  r = check(client, team);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  GRANTED(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

static void not_granted_by_another_benefit(void) {
  char pro[64], basic[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "", pro);
  emu_new_key_on(BASIC, "", basic);
  r = check(client, pro);
  NOT_IN_TIER(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  /* A licensed key whose tier grants nothing in the map. */
  r = check(client, basic);
  CHECK(polar_license_result_is_licensed(r));
  NOT_IN_TIER(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  NOT_IN_TIER(ask(client, r, "api_calls"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

static void unknown_feature(void) {
  char pro[64];
  polar_license_client *client = gated_client(NULL, 0), *no_map;
  polar_license_result *r;
  emu_new_key_on(PRO, "", pro);
  r = check(client, pro);
  UNKNOWN(ask(client, r, "time_travel"), POLAR_LICENSE_SOURCE_ONLINE);
  /* Names are exact: no case folding, no trimming. */
  UNKNOWN(ask(client, r, "PRO_EXPORT"), POLAR_LICENSE_SOURCE_ONLINE);
  UNKNOWN(ask(client, r, ""), POLAR_LICENSE_SOURCE_ONLINE);
  /* A client without a map knows no feature (the result of another client is fine). */
  no_map = new_client(NULL, 0, HOUR, WEEK);
  UNKNOWN(ask(no_map, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_client_free(no_map);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

/* A verdict that does not license grants nothing, whatever the map says. */
static void a_denied_license_grants_nothing(void) {
  char revoked[64], pro[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "\"status\":\"revoked\"", revoked);
  r = check(client, revoked);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  NOT_VALID(ask(client, r, "pro_export"), POLAR_LICENSE_REASON_INACTIVE);
  NOT_VALID(ask(client, r, "api_calls"), POLAR_LICENSE_REASON_INACTIVE);
  /* Not licensed comes first, even for an unknown feature. */
  NOT_VALID(ask(client, r, "time_travel"), POLAR_LICENSE_REASON_INACTIVE);
  polar_license_result_free(r);
  /* An unknown key. */
  r = check(client, "CTEST-NO-SUCH-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  NOT_VALID(ask(client, r, "pro_export"), POLAR_LICENSE_REASON_NOT_FOUND);
  polar_license_result_free(r);
  /* Unverified (Polar unreachable, nothing cached) is not licensed either. */
  emu_new_key_on(PRO, "", pro);
  emu_fault("{\"kind\":\"close_immediately\"}");
  r = check(client, pro);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  NOT_VALID(ask(client, r, "pro_export"), POLAR_LICENSE_REASON_OFFLINE);
  polar_license_result_free(r);
  emu_fault(NULL);
  /* A check refused before any request (an empty key) is a verdict too. */
  r = check(client, "");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  NOT_VALID(ask(client, r, "pro_export"), POLAR_LICENSE_REASON_INVALID_INPUT);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

/* The result of a plain validate answers the same way. */
static void validate_results_answer_too(void) {
  char pro[64], revoked[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "", pro);
  emu_new_key_on(TEAM, "\"status\":\"disabled\"", revoked);
  r = validate(client, pro, 0);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  NOT_IN_TIER(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  r = validate(client, revoked, 0);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  NOT_VALID(ask(client, r, "team_sync"), POLAR_LICENSE_REASON_INACTIVE);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

/* Polar unreachable: the cached verdict within the grace period answers exactly as the online
 * one did; past the grace, nothing is granted. */
static void a_cached_verdict_within_grace_answers_like_an_online_one(void) {
  char dir[64], pro[64];
  polar_license_client *client, *later;
  polar_license_result *r;
  temp_dir(dir);
  emu_new_key_on(PRO, "\"limit_usage\":10,\"usage\":4", pro);
  client = gated_client(dir, 0);
  r = check(client, pro);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  USES_LEFT(ask(client, r, "api_calls"), POLAR_LICENSE_SOURCE_ONLINE, 6);
  polar_license_result_free(r);

  emu_fault("{\"kind\":\"close_immediately\"}");
  /* Three days later (past revalidate_after, within the week of grace). */
  later = gated_client(dir, 3 * DAY);
  r = check(later, pro);
  /* Licensed from the cache; the reason says what happened online. */
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
             POLAR_LICENSE_SOURCE_CACHE);
  CHECK(polar_license_result_grace_remaining_seconds(r) > 3 * DAY);
  GRANTED(ask(later, r, "pro_export"), POLAR_LICENSE_SOURCE_CACHE);
  USES_LEFT(ask(later, r, "api_calls"), POLAR_LICENSE_SOURCE_CACHE, 6);
  NOT_IN_TIER(ask(later, r, "team_sync"), POLAR_LICENSE_SOURCE_CACHE);
  UNKNOWN(ask(later, r, "time_travel"), POLAR_LICENSE_SOURCE_CACHE);
  polar_license_result_free(r);
  polar_license_client_free(later);

  /* Eight days later: past the grace, so the verdict does not license. */
  later = gated_client(dir, 8 * DAY);
  r = check(later, pro);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_GRACE_EXPIRED);
  NOT_VALID(ask(later, r, "pro_export"), POLAR_LICENSE_REASON_GRACE_EXPIRED);
  polar_license_result_free(r);
  polar_license_client_free(later);
  client_done(client, dir);
}

static void metered_feature_with_uses_left(void) {
  char metered[64], unlimited[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "\"limit_usage\":10,\"usage\":7", metered);
  emu_new_key_on(PRO, "", unlimited);
  r = check(client, metered);
  USES_LEFT(ask(client, r, "api_calls"), POLAR_LICENSE_SOURCE_ONLINE, 3);
  /* A feature that is not metered carries no count. */
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  /* Spending the last three uses: the validate answer has none left. */
  r = validate(client, metered, 3);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_usage(r), 10);
  EXHAUSTED(ask(client, r, "api_calls"), 0);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  /* A key without a usage limit: granted, with no count. */
  r = check(client, unlimited);
  GRANTED(ask(client, r, "api_calls"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

static void metered_feature_with_none_left(void) {
  char spent[64], over[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  emu_new_key_on(PRO, "\"limit_usage\":10,\"usage\":10", spent);
  r = check(client, spent);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  EXHAUSTED(ask(client, r, "api_calls"), 0);
  /* The license itself is fine: its other features stay granted. */
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  /* The merchant lowered the limit below the usage: the count goes negative. */
  emu_new_key_on(PRO, "\"limit_usage\":10,\"usage\":4", over);
  emu_patch_key(over, "{\"limit_usage\":2}");
  r = check(client, over);
  EXHAUSTED(ask(client, r, "api_calls"), -2);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

/* The same map as JSON answers the same. */
static void a_json_map_answers_the_same(void) {
  char pro[64], team[64], spent[64];
  polar_license_config *config = base_config(NULL, 0);
  polar_license_client *client;
  polar_license_result *r;
  CHECK_INT(polar_license_config_set_entitlements_json(config, MAP_JSON), OK);
  CHECK_STR(polar_license_config_last_error(config), "");
  client = client_of(config);
  emu_new_key_on(PRO, "", pro);
  emu_new_key_on(TEAM, "", team);
  emu_new_key_on(PRO, "\"limit_usage\":5,\"usage\":5", spent);
  r = check(client, pro);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  NOT_IN_TIER(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  r = check(client, team);
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);
  GRANTED(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  r = check(client, spent);
  EXHAUSTED(ask(client, r, "api_calls"), 0);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

static char sentinel;

/* Builds `config` expecting INVALID_INPUT with `needle` in the last error. */
static void refused(polar_license_config *config, const char *needle) {
  polar_license_client *client = (polar_license_client *)&sentinel; /* must stay untouched */
  CHECK_INT(polar_license_client_new(config, &client), BAD_INPUT);
  CHECK(client == (polar_license_client *)&sentinel);
  if (strstr(polar_license_config_last_error(config), needle) == NULL) {
    harness_fail_str(__FILE__, __LINE__, "last_error", polar_license_config_last_error(config),
                     needle);
  }
  polar_license_config_free(config);
}

static void an_invalid_map_is_refused_naming_the_entry(void) {
  char team[64];
  polar_license_config *config;
  polar_license_client *client;
  polar_license_result *r;

  /* A benefit id that is not a UUID: refused at once, and by the build. */
  config = base_config(NULL, 0);
  add_map(config);
  CHECK_INT(polar_license_config_add_feature(config, "broken", "x"), BAD_INPUT);
  CHECK_STR(polar_license_config_last_error(config),
            "invalid input: entitlements.broken: benefit id `x` is not a UUID v4");
  must(polar_license_config_add_feature(config, "fine", BASIC)); /* clears the last error */
  CHECK_STR(polar_license_config_last_error(config), "");
  refused(config, "entitlements.broken: benefit id `x` is not a UUID v4");

  /* A UUID that is not v4 (version 1). */
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_add_feature(config, "legacy",
                                             "0b1c2d3e-4f50-1a6b-8c7d-9e0f1a2b3c4d"),
            BAD_INPUT);
  refused(config, "entitlements.legacy: benefit id");

  /* Feature names: not empty, no spaces at the ends, at most 64 characters. */
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_add_feature(config, "", PRO), BAD_INPUT);
  refused(config, "entitlements.: feature names must have 1-64 characters");
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_add_feature(config, " pro", PRO), BAD_INPUT);
  refused(config, "entitlements. pro: feature names must not start or end with spaces");
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_add_feature(
                config, "a23456789012345678901234567890123456789012345678901234567890123456", PRO),
            BAD_INPUT);
  refused(config, "feature names must have 1-64 characters");

  /* Marked metered but never given a benefit. */
  config = base_config(NULL, 0);
  add_map(config);
  must(polar_license_config_set_feature_metered(config, "ghost", true));
  refused(config, "entitlements.ghost: needs at least one benefit id");

  /* JSON: a bad entry, a bad shape, not JSON at all. */
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_set_entitlements_json(
                config, "{\"pro_export\": [\"" PRO "\"], \"broken\": [\"x\"]}"),
            BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "entitlements.broken") != NULL);
  refused(config, "entitlements.broken: benefit id `x` is not a UUID v4");
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_set_entitlements_json(config, "{\"empty\": []}"), BAD_INPUT);
  refused(config, "entitlements.empty: needs at least one benefit id");
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_set_entitlements_json(config, "[\"" PRO "\"]"), BAD_INPUT);
  refused(config, "entitlements: expected");
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_set_entitlements_json(config, "not json"), BAD_INPUT);
  refused(config, "entitlements: expected");
  /* A later good JSON map replaces a refused one. */
  config = base_config(NULL, 0);
  CHECK_INT(polar_license_config_set_entitlements_json(config, "not json"), BAD_INPUT);
  must(polar_license_config_set_entitlements_json(config, MAP_JSON));
  polar_license_client_free(client_of(config));

  /* A feature both in the JSON map and added: listed twice. */
  config = base_config(NULL, 0);
  must(polar_license_config_set_entitlements_json(config, MAP_JSON));
  must(polar_license_config_add_feature(config, "team_sync", PRO));
  refused(config, "entitlements.team_sync: feature listed twice");

  /* The same benefit twice for one feature is harmless; ids are matched case-insensitively. */
  config = base_config(NULL, 0);
  must(polar_license_config_add_feature(config, "pro_export", PRO));
  must(polar_license_config_add_feature(config, "pro_export", PRO));
  must(polar_license_config_add_feature(config, "team_sync",
                                        "1C2D3E4F-5061-4B7C-9D8E-0F1A2B3C4D5E"));
  client = client_of(config);
  emu_new_key_on(TEAM, "", team);
  r = check(client, team);
  GRANTED(ask(client, r, "team_sync"), POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  polar_license_client_free(client);
}

static void null_arguments_and_results_that_are_not_verdicts(void) {
  char pro[64], dir[64];
  polar_license_client *client;
  polar_license_config *config = NULL;
  polar_license_result *r = NULL, *status = NULL, *activated = NULL;
  polar_license_feature_access *access = (polar_license_feature_access *)&sentinel;
  polar_license_feature_access *untouched = access;
  int64_t left = 42;

  /* Config calls. */
  CHECK_INT(polar_license_config_add_feature(NULL, "pro_export", PRO), NUL_ARG);
  CHECK_INT(polar_license_config_set_feature_metered(NULL, "pro_export", true), NUL_ARG);
  CHECK_INT(polar_license_config_set_entitlements_json(NULL, MAP_JSON), NUL_ARG);
  must(polar_license_config_new(&config));
  CHECK_INT(polar_license_config_add_feature(config, NULL, PRO), NUL_ARG);
  CHECK_INT(polar_license_config_add_feature(config, "pro_export", NULL), NUL_ARG);
  CHECK_INT(polar_license_config_add_feature(config, bad_utf8, PRO), BAD_UTF8);
  CHECK_INT(polar_license_config_add_feature(config, "pro_export", bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_config_set_feature_metered(config, NULL, true), NUL_ARG);
  CHECK_INT(polar_license_config_set_feature_metered(config, bad_utf8, true), BAD_UTF8);
  CHECK_INT(polar_license_config_set_entitlements_json(config, NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_entitlements_json(config, bad_utf8), BAD_UTF8);
  polar_license_config_free(config);

  /* The question. */
  temp_dir(dir);
  client = gated_client(dir, 0);
  emu_new_key_on(PRO, "\"limit_activations\":2", pro);
  r = check(client, pro);
  CHECK_INT(polar_license_client_has_feature(NULL, r, "pro_export", &access), NUL_ARG);
  CHECK_INT(polar_license_client_has_feature(client, NULL, "pro_export", &access), NUL_ARG);
  CHECK_STR(polar_license_client_last_error(client), "result is NULL");
  CHECK_INT(polar_license_client_has_feature(client, r, NULL, &access), NUL_ARG);
  CHECK_STR(polar_license_client_last_error(client), "feature is NULL");
  CHECK_INT(polar_license_client_has_feature(client, r, "pro_export", NULL), NUL_ARG);
  CHECK_STR(polar_license_client_last_error(client), "out_access is NULL");
  CHECK_INT(polar_license_client_has_feature(client, r, bad_utf8, &access), BAD_UTF8);
  CHECK_STR(polar_license_client_last_error(client), "feature is not valid UTF-8");
  CHECK(access == untouched);

  /* Activate and status results are not verdicts: the question is refused. */
  activated = activate_labeled(client, pro, "c-test");
  CHECK_ANSWER(activated, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_client_has_feature(client, activated, "pro_export", &access), BAD_INPUT);
  CHECK(strstr(polar_license_client_last_error(client), "not a verdict") != NULL);
  must(polar_license_client_status(client, pro, &status));
  CHECK_INT(polar_license_client_has_feature(client, status, "pro_export", &access), BAD_INPUT);
  CHECK(access == untouched);
  /* A good question clears the last error. */
  GRANTED(ask(client, r, "pro_export"), POLAR_LICENSE_SOURCE_ONLINE);

  /* Accessors on NULL: never granted. */
  CHECK(!polar_license_feature_access_granted(NULL));
  CHECK_INT(polar_license_feature_access_why(NULL), POLAR_LICENSE_FEATURE_WHY_NONE);
  CHECK_INT(polar_license_feature_access_license_reason(NULL), POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_feature_access_source(NULL), POLAR_LICENSE_SOURCE_NONE);
  CHECK_STR(polar_license_feature_access_feature(NULL), "");
  CHECK(!polar_license_feature_access_remaining_usage(NULL, &left));
  CHECK_INT(left, 42);
  access = ask(client, r, "api_calls");
  CHECK(!polar_license_feature_access_remaining_usage(access, NULL));
  polar_license_feature_access_free(access);
  polar_license_feature_access_free(NULL);

  /* An access outlives the result, the client and the question's string. */
  {
    char name[16];
    snprintf(name, sizeof name, "%s", "pro_export");
    access = ask(client, r, name);
    memset(name, 'x', sizeof name - 1);
    polar_license_result_free(r);
    polar_license_result_free(status);
    polar_license_result_free(activated);
    polar_license_client_free(client);
    CHECK(polar_license_feature_access_granted(access));
    CHECK_STR(polar_license_feature_access_feature(access), "pro_export");
    polar_license_feature_access_free(access);
  }
  remove_tree(dir);
}

/* One client and one shared result asked about features from several threads at once; every
 * answer is checked on the worker and counted, and asserted on the main thread (the harness
 * counters are not thread-safe). Odd threads also make a refused call: their last error names
 * it and the next good call clears it, for that thread alone. */
#define FEATURE_THREADS 8
#define FEATURE_ROUNDS 50

struct feature_work {
  polar_license_client *client;
  const polar_license_result *result; /* shared, read-only */
  int index;
  int right;
};

static int answer_is(polar_license_client *client, const polar_license_result *result,
                     const char *feature, bool granted, polar_license_feature_why why) {
  polar_license_feature_access *access = NULL;
  int ok = polar_license_client_has_feature(client, result, feature, &access) == OK &&
           access != NULL && polar_license_feature_access_granted(access) == granted &&
           polar_license_feature_access_why(access) == why &&
           strcmp(polar_license_feature_access_feature(access), feature) == 0 &&
           polar_license_client_last_error(client)[0] == '\0';
  polar_license_feature_access_free(access);
  return ok;
}

static void *feature_worker(void *arg) {
  struct feature_work *w = arg;
  int i;
  for (i = 0; i < FEATURE_ROUNDS; i++) {
    int ok = answer_is(w->client, w->result, "pro_export", true, POLAR_LICENSE_FEATURE_WHY_GRANTED) &&
             answer_is(w->client, w->result, "team_sync", false,
                       POLAR_LICENSE_FEATURE_WHY_NOT_GRANTED_BY_BENEFIT) &&
             answer_is(w->client, w->result, "no_such_feature", false,
                       POLAR_LICENSE_FEATURE_WHY_UNKNOWN_FEATURE);
    if (w->index % 2 == 1) {
      polar_license_feature_access *access = NULL;
      ok = ok &&
           polar_license_client_has_feature(w->client, w->result, bad_utf8, &access) == BAD_UTF8 &&
           access == NULL && strstr(polar_license_client_last_error(w->client), "UTF-8") != NULL &&
           answer_is(w->client, w->result, "pro_export", true, POLAR_LICENSE_FEATURE_WHY_GRANTED);
    }
    w->right += ok;
  }
  return NULL;
}

static void has_feature_from_many_threads(void) {
  char pro[64];
  polar_license_client *client = gated_client(NULL, 0);
  polar_license_result *r;
  pthread_t threads[FEATURE_THREADS];
  struct feature_work work[FEATURE_THREADS];
  int i;
  emu_new_key_on(PRO, "", pro);
  r = check(client, pro);
  CHECK(polar_license_result_is_licensed(r));
  for (i = 0; i < FEATURE_THREADS; i++) {
    work[i].client = client;
    work[i].result = r;
    work[i].index = i;
    work[i].right = 0;
    CHECK_INT(pthread_create(&threads[i], NULL, feature_worker, &work[i]), 0);
  }
  for (i = 0; i < FEATURE_THREADS; i++) {
    CHECK_INT(pthread_join(threads[i], NULL), 0);
    CHECK_INT(work[i].right, FEATURE_ROUNDS);
  }
  CHECK_STR(polar_license_client_last_error(client), "");
  polar_license_result_free(r);
  polar_license_client_free(client);
}

int main(void) {
  RUN(feature_whys_and_codes);
  RUN(granted_by_one_of_several_benefits);
  RUN(not_granted_by_another_benefit);
  RUN(unknown_feature);
  RUN(a_denied_license_grants_nothing);
  RUN(validate_results_answer_too);
  RUN(a_cached_verdict_within_grace_answers_like_an_online_one);
  RUN(metered_feature_with_uses_left);
  RUN(metered_feature_with_none_left);
  RUN(a_json_map_answers_the_same);
  RUN(an_invalid_map_is_refused_naming_the_entry);
  RUN(null_arguments_and_results_that_are_not_verdicts);
  RUN(has_feature_from_many_threads);
  return harness_summary("test_features");
}
