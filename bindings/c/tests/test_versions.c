/*
 * test_versions.c: issue #16 through the C API. The suite's emulator answers as Polar's API
 * version 2027-01 (scripts/test-c.sh starts it with --api-version 2027-01, the shape the
 * current version takes next), so every C suite reads its answers; here the member,
 * subscription and order accessors are read from a check, a validate, an activate and the
 * cache, and a key rotated after it was valid here is told apart from a typo
 * (previously_valid, hint). (tests/polar_versions.rs covers all three versions.)
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define HOUR 3600
#define WEEK (7 * 24 * HOUR)

/* 2027-02-01T00:00:00Z */
#define PERIOD_END 1801440000LL

#define EXTRAS                                                                                    \
  "\"limit_activations\":2,"                                                                     \
  "\"member\":{\"email\":\"seat@acme.io\",\"external_id\":\"seat-7\"},"                          \
  "\"subscription\":{\"status\":\"active\",\"current_period_end\":\"2027-02-01T00:00:00Z\","     \
  "\"cancel_at_period_end\":true},"                                                              \
  "\"order\":{\"status\":\"paid\"}"

static void check_grant(const polar_license_result *r) {
  CHECK(strlen(polar_license_result_member_id(r)) == 36);
  CHECK_STR(polar_license_result_member_email(r), "seat@acme.io");
  CHECK(strlen(polar_license_result_subscription_id(r)) == 36);
  CHECK_STR(polar_license_result_subscription_status(r), "active");
  CHECK_INT(polar_license_result_subscription_period_end(r), PERIOD_END);
  CHECK_INT(polar_license_result_subscription_cancel_at_period_end(r), 1);
  CHECK_INT(polar_license_result_subscription_ends_at(r), -1);
  CHECK(strlen(polar_license_result_order_id(r)) == 36);
  CHECK_STR(polar_license_result_order_status(r), "paid");
  CHECK_INT(polar_license_result_order_paid(r), 1);
  CHECK(strstr(polar_license_result_license_json(r), "\"member\":{") != NULL);
}

static void member_subscription_and_order_on_every_answer(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  emu_new_key(EXTRAS, key);

  r = activate_labeled(client, key, "laptop");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  check_grant(r);
  snprintf(id, sizeof id, "%s", polar_license_result_activation_id(r));
  polar_license_result_free(r);

  r = validate_activation(client, key, id);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  check_grant(r);
  polar_license_result_free(r);

  /* From the cache, Polar down: the fields came through the record. */
  emu_fault("{\"kind\":\"close_immediately\"}");
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_CACHE);
  check_grant(r);
  polar_license_result_free(r);
  emu_fault(NULL);

  r = status(client, key);
  check_grant(r);
  polar_license_result_free(r);
  client_done(client, dir);
}

static void a_key_without_them_reads_empty_and_minus_one(void) {
  char dir[64], key[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  emu_new_key("", key);
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_member_id(r), "");
  CHECK_STR(polar_license_result_member_email(r), "");
  CHECK_STR(polar_license_result_subscription_status(r), "");
  CHECK_INT(polar_license_result_subscription_period_end(r), -1);
  CHECK_INT(polar_license_result_subscription_cancel_at_period_end(r), -1);
  CHECK_STR(polar_license_result_order_id(r), "");
  CHECK_INT(polar_license_result_order_paid(r), -1);
  CHECK(!polar_license_result_previously_valid(r));
  CHECK_STR(polar_license_result_hint(r), "");
  polar_license_result_free(r);
  client_done(client, dir);

  /* NULL reads as nothing known. */
  CHECK_STR(polar_license_result_member_email(NULL), "");
  CHECK_INT(polar_license_result_order_paid(NULL), -1);
  CHECK_INT(polar_license_result_subscription_cancel_at_period_end(NULL), -1);
  CHECK(!polar_license_result_previously_valid(NULL));
  CHECK_STR(polar_license_result_hint(NULL), "");
}

static void a_rotated_key_that_was_valid_here_says_so(void) {
  char dir[64], key[64], path[160], body[512];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  client = cached_client(dir, HOUR, WEEK);
  emu_new_key("", key);
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);

  snprintf(path, sizeof path, "/__emulator/keys/%s/rotate", key);
  CHECK_INT(emu_request("POST", path, "", body, sizeof body), 200);

  request = new_request(key);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  CHECK_STR(polar_license_result_detail(r), "Not found");
  CHECK(polar_license_result_previously_valid(r));
  CHECK(strstr(polar_license_result_hint(r), "replaced") != NULL);
  polar_license_result_free(r);
  polar_license_request_free(request);

  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  CHECK(polar_license_result_previously_valid(r));
  /* The hint is one sentence; the core's next step stands beside it (issue #80). */
  CHECK(strstr(polar_license_result_hint(r), "replaced") != NULL);
  CHECK(strstr(polar_license_result_next_step(r), "customer portal") != NULL);
  polar_license_result_free(r);

  r = status(client, key);
  CHECK(polar_license_result_previously_valid(r));
  CHECK(strstr(polar_license_result_hint(r), "replaced") != NULL);
  polar_license_result_free(r);

  /* A typo was never valid here. */
  must(polar_license_client_check(client, "CTEST-TYPO-0000", &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  CHECK(!polar_license_result_previously_valid(r));
  CHECK_STR(polar_license_result_hint(r), "");
  polar_license_result_free(r);
  client_done(client, dir);
}

/* Issue #78: Polar's January 2027 release in the middle of a run (2026-04 removed, 2027-01 made
 * current) through a private emulator's control route (POST /__emulator/api-versions): a check
 * of a granted key and of a revoked one answer the same before and after, and every request
 * named the library (User-Agent polar-license/<version> (rust)) and pinned no version (GET
 * /__emulator/requests/seen). */
static void the_rotation_day_changes_no_verdict(void) {
  static char seen[65536];
  char dir[64], url[64];
  const char *granted = "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A";
  const char *revoked = "DEMO-REVOKED-7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D";
  polar_license_client *client;
  polar_license_result *r;
  int port = closed_port();
  int pid = emu_start_private(port);
  int round;
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  temp_dir(dir);
  {
    polar_license_config *config = demo_config(url, dir);
    must(polar_license_config_set_grace_policy(config, 0, 7 * 24 * 3600, 0));
    client = client_of(config);
  }
  for (round = 0; round < 2; round++) {
    if (round == 1) {
      CHECK_INT(emu_request_at(port, "POST", "/__emulator/api-versions",
                               "{\"served\":[\"2026-10\",\"2027-01\"],\"current\":\"2027-01\"}",
                               NULL, 0),
                200);
    }
    r = CHECKED(client, granted, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
    polar_license_result_free(r);
    r = CHECKED(client, revoked, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
    polar_license_result_free(r);
  }
  CHECK_INT(emu_request_at(port, "GET", "/__emulator/requests/seen", NULL, seen, sizeof seen),
            200);
  CHECK(strstr(seen, "\"user_agent\":\"polar-license/") != NULL);
  CHECK(strstr(seen, "(rust)\"") != NULL);
  CHECK(strstr(seen, "\"user_agent\":null") == NULL);
  CHECK(strstr(seen, "\"polar_version\":\"") == NULL);
  client_done(client, dir);
  emu_stop_private(pid);
}

int main(void) {
  RUN(member_subscription_and_order_on_every_answer);
  RUN(a_key_without_them_reads_empty_and_minus_one);
  RUN(a_rotated_key_that_was_valid_here_says_so);
  RUN(the_rotation_day_changes_no_verdict);
  return harness_summary("test_versions");
}
