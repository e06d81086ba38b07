/*
 * test_grace.c: the offline grace cache through the C API: licensed from the cache while
 * Polar is unreachable, grace_expired, clock_rollback (with the test-only clock offset),
 * denials never riding the grace window, status, deactivate.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define HOUR 3600
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)

/* A client on a fresh cache directory (this revalidate_after, a week of grace), and a fresh key
 * activated through it and checked once: the activation is a verdict, so the check answers
 * from the cache (or online, when revalidate_after is 0). */
static polar_license_client *activated_and_checked(char dir[64], uint64_t revalidate_after,
                                                   char key[64], char id[64]) {
  polar_license_client *client = cached_client(dir, revalidate_after, WEEK);
  polar_license_result *r;
  activated_key(client, "\"limit_activations\":3", key, id);
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  CHECK(polar_license_result_cache_refreshed(r));
  polar_license_result_free(r);
  return client;
}

/* activated_and_checked, then Polar drops every connection from here on. */
static polar_license_client *checked_then_unreachable(char dir[64], uint64_t revalidate_after,
                                                      char key[64], char id[64]) {
  polar_license_client *client = activated_and_checked(dir, revalidate_after, key, id);
  emu_fault("{\"kind\":\"close_immediately\"}");
  return client;
}

/* The scenario: activate + check online, then the server drops every connection. */
static void offline_check_is_licensed_from_the_cache(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r;
  long before;
  client = checked_then_unreachable(dir, 0, key, id); /* revalidate_after 0: every check asks */
  before = emu_request_count();
  r = check(client, key);
  CHECK(emu_request_count() > before); /* it did ask */
  /* Licensed from the cache; the reason says what happened online. */
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
             POLAR_LICENSE_SOURCE_CACHE);
  CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 60);
  CHECK(polar_license_result_grace_remaining_seconds(r) <= WEEK);
  CHECK(polar_license_result_verified_at(r) > 0);
  /* The core's words (issue #80): how long this device stays licensed, and what keeps it. */
  CHECK(strncmp(polar_license_result_user_message(r),
                "Polar could not be reached, so this device stays licensed for ", 62) == 0);
  CHECK(strstr(polar_license_result_user_message(r), "connect to the internet") != NULL);
  CHECK_STR(polar_license_result_activation_id(r), id);
  CHECK_INT(polar_license_result_limit_activations(r), 3);
  polar_license_result_free(r);
  /* A 500 falls back the same way. */
  emu_fault("{\"kind\":\"status\",\"status\":500,\"body\":\"x\"}");
  EXPECT_CHECK_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_SERVER_ERROR,
                    POLAR_LICENSE_SOURCE_CACHE);
  /* So does a page that is not Polar's (a hotel login page), and it writes no denial. */
  emu_fault("{\"kind\":\"respond\",\"status\":200,\"headers\":[[\"content-type\","
            "\"text/html\"]],\"body\":\"<html>Hotel Wi-Fi login</html>\"}");
  EXPECT_CHECK_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED,
                    POLAR_LICENSE_REASON_PROTOCOL_ERROR, POLAR_LICENSE_SOURCE_CACHE);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  client_done(client, dir);
}

static void a_fresh_verdict_answers_with_no_request(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r;
  long before;
  client = activated_and_checked(dir, HOUR, key, id);
  before = emu_request_count();
  r = check(client, key);
  CHECK_INT(emu_request_count(), before);
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_CACHE);
  /* Nothing went wrong: simply licensed, no next step. */
  CHECK_STR(polar_license_result_user_message(r), "This device is licensed.");
  CHECK_STR(polar_license_result_next_step(r), "");
  polar_license_result_free(r);
  client_done(client, dir);
}

static void grace_expired(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client, *later;
  polar_license_result *r;
  client = checked_then_unreachable(dir, HOUR, key, id);
  /* Six days later: still within the grace period. */
  later = new_client(dir, 6 * DAY, HOUR, WEEK);
  r = CHECKED_FROM(later, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK(polar_license_result_grace_remaining_seconds(r) <= DAY);
  polar_license_result_free(r);
  polar_license_client_free(later);
  /* Eight days later: past it. */
  later = new_client(dir, 8 * DAY, HOUR, WEEK);
  r = CHECKED(later, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_GRACE_EXPIRED);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  polar_license_client_free(later);
  client_done(client, dir);
}

static void clock_rollback(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client, *earlier;
  polar_license_result *r;
  client = checked_then_unreachable(dir, HOUR, key, id);
  /* The clock set back a day (past the 10 minute tolerance), and Polar unreachable. */
  earlier = new_client(dir, -DAY, HOUR, WEEK);
  EXPECT_CHECK(earlier, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  r = status(earlier, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_CLOCK_ROLLBACK);
  CHECK_INT(polar_license_result_grace_remaining_seconds(r), -1);
  polar_license_result_free(r);
  /* An online answer re-anchors the record. */
  emu_fault(NULL);
  EXPECT_CHECK_FROM(earlier, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                    POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_client_free(earlier);
  client_done(client, dir);
}

static void a_denial_never_rides_the_grace_window(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r;
  client = activated_and_checked(dir, 0, key, id);
  emu_patch_key(key, "{\"status\":\"revoked\"}");
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  emu_fault("{\"kind\":\"close_immediately\"}");
  EXPECT_CHECK(client, key, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_INACTIVE);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  polar_license_result_free(r);
  client_done(client, dir);
}

static void status_reports_the_cache(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r;
  long before;
  client = cached_client(dir, HOUR, WEEK);
  emu_new_key("\"limit_activations\":3", key);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_EMPTY);
  CHECK_STR(polar_license_result_activation_id(r), "");
  polar_license_result_free(r);
  activate_ok(client, key, id);
  before = emu_request_count();
  r = status(client, key);
  CHECK_INT(emu_request_count(), before); /* no network */
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  CHECK_STR(polar_license_result_activation_id(r), id);
  /* The activation is a verdict: the grace runs from it. */
  CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 60);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_NONE);
  polar_license_result_free(r);
  r = check(client, key);
  polar_license_result_free(r);
  r = status(client, key);
  CHECK(polar_license_result_grace_remaining_seconds(r) > WEEK - 60);
  CHECK(polar_license_result_verified_at(r) > 0);
  CHECK_INT(polar_license_result_limit_activations(r), 3);
  polar_license_result_free(r);
  client_done(client, dir);
}

static void another_app_secret_cannot_read_the_cache(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client, *other;
  polar_license_config *config = NULL;
  polar_license_result *r;
  client = activated_and_checked(dir, HOUR, key, id);
  config = demo_config(emu_url(), dir);
  must(polar_license_config_set_app_secret(config, (const uint8_t *)"s3cret", 6));
  other = client_of(config);
  r = status(other, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_UNTRUSTED);
  polar_license_result_free(r);
  polar_license_client_free(other);
  client_done(client, dir);
}

static void deactivate_forgets_the_remembered_activation(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  client = activated_and_checked(dir, HOUR, key, id);
  must(polar_license_client_deactivate(client, key, NULL, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  CHECK_STR(polar_license_result_user_message(r),
            "This device is deactivated and its seat is free for another device: activate a "
            "license key to use the app here again.");
  CHECK_STR(polar_license_result_next_step(r), "Activate a license key to use the app here again.");
  polar_license_result_free(r);
  r = status(client, key);
  CHECK_STR(polar_license_result_activation_id(r), "");
  polar_license_result_free(r);
  /* Nothing remembered any more: invalid_input naming activation_id. */
  must(polar_license_client_deactivate(client, key, NULL, &r));
  CHECK_INVALID(r, "activation_id");
  polar_license_result_free(r);
  client_done(client, dir);
}

static void check_request_uses_the_cache_for_the_same_request(void) {
  char dir[64], key[64];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  client = cached_client(dir, 0, WEEK);
  emu_new_key("", key);
  request = new_request(key);
  polar_license_request_set_benefit_id(request, DEMO_BENEFIT);
  must(polar_license_client_check_request(client, request, &r));
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);
  emu_fault("{\"kind\":\"close_immediately\"}");
  must(polar_license_client_check_request(client, request, &r));
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_OFFLINE,
             POLAR_LICENSE_SOURCE_CACHE);
  polar_license_result_free(r);
  /* A different request is not answered from that record. */
  polar_license_request_set_customer_id(request, DEMO_CUSTOMER);
  must(polar_license_client_check_request(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  client_done(client, dir);
}

/* With require_activation, a key never activated here (or deactivated) is refused with no
 * request; once activated it licenses. Without it, the bare key licenses (Polar's own rule). */
static void require_activation_refuses_a_key_not_activated_here(void) {
  char dir[64], key[64], id[64];
  polar_license_config *config = NULL;
  polar_license_client *client = NULL, *bare;
  polar_license_result *r = NULL;
  long before;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":2", key);
  config = demo_config(emu_url(), dir);
  must(polar_license_config_set_require_activation(config, true));
  client = client_of(config);
  CHECK_INT(polar_license_config_set_require_activation(NULL, true),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);

  before = emu_request_count();
  r = check(client, key);
  CHECK_INVALID(r, "activation_id");
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  CHECK_INT(emu_request_count(), before);

  /* The same cache without the requirement: the bare key is licensed online. */
  bare = new_client(dir, 0, HOUR, WEEK);
  EXPECT_CHECK(bare, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_client_free(bare);

  activate_ok(client, key, id);
  r = CHECKED(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);

  must(polar_license_client_deactivate(client, key, NULL, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  r = check(client, key);
  CHECK_INVALID(r, "activation_id");
  polar_license_result_free(r);
  client_done(client, dir);
}

int main(void) {
  RUN(offline_check_is_licensed_from_the_cache);
  RUN(a_fresh_verdict_answers_with_no_request);
  RUN(grace_expired);
  RUN(clock_rollback);
  RUN(a_denial_never_rides_the_grace_window);
  RUN(status_reports_the_cache);
  RUN(another_app_secret_cannot_read_the_cache);
  RUN(deactivate_forgets_the_remembered_activation);
  RUN(check_request_uses_the_cache_for_the_same_request);
  RUN(require_activation_refuses_a_key_not_activated_here);
  return harness_summary("test_grace");
}
