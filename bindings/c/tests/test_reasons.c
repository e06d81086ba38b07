/*
 * test_reasons.c: every reason code of docs/interfaces.md §1 through the C API, against the
 * emulator. (grace_expired and clock_rollback are in test_grace.c.)
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static char cache[64];

/* Validates `request` once with a fresh client, returns the result (caller frees). */
static polar_license_result *validate(polar_license_request *request) {
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_result *result = NULL;
  must(polar_license_client_validate(client, request, &result));
  polar_license_client_free(client);
  return result;
}

static polar_license_result *validate_key(const char *key) {
  polar_license_request *request = new_request(key);
  polar_license_result *result = validate(request);
  polar_license_request_free(request);
  return result;
}

/* The reason table: every C number has the code docs/interfaces.md §1 gives it. */
static void reason_table_matches_the_contract(void) {
  /* Row i is the reason numbered i. */
  static const struct {
    polar_license_reason reason;
    const char *code;
  } rows[] = {
      {POLAR_LICENSE_REASON_NONE, ""},
      {POLAR_LICENSE_REASON_NOT_FOUND, "not_found"},
      {POLAR_LICENSE_REASON_INACTIVE, "inactive"},
      {POLAR_LICENSE_REASON_EXPIRED, "expired"},
      {POLAR_LICENSE_REASON_CONDITIONS_MISMATCH, "conditions_mismatch"},
      {POLAR_LICENSE_REASON_BENEFIT_MISMATCH, "benefit_mismatch"},
      {POLAR_LICENSE_REASON_CUSTOMER_MISMATCH, "customer_mismatch"},
      {POLAR_LICENSE_REASON_USAGE_EXHAUSTED, "usage_exhausted"},
      {POLAR_LICENSE_REASON_ACTIVATION_LIMIT, "activation_limit"},
      {POLAR_LICENSE_REASON_ACTIVATIONS_NOT_SUPPORTED, "activations_not_supported"},
      {POLAR_LICENSE_REASON_OFFLINE, "offline"},
      {POLAR_LICENSE_REASON_RATE_LIMITED, "rate_limited"},
      {POLAR_LICENSE_REASON_SERVER_ERROR, "server_error"},
      {POLAR_LICENSE_REASON_GRACE_EXPIRED, "grace_expired"},
      {POLAR_LICENSE_REASON_CLOCK_ROLLBACK, "clock_rollback"},
      {POLAR_LICENSE_REASON_PROTOCOL_ERROR, "protocol_error"},
      {POLAR_LICENSE_REASON_INVALID_INPUT, "invalid_input"},
      {POLAR_LICENSE_REASON_CACHE_ERROR, "cache_error"},
      {POLAR_LICENSE_REASON_LOAD_ERROR, "load_error"},
      {POLAR_LICENSE_REASON_NOT_YET_VERIFIED, "not_yet_verified"},
      {POLAR_LICENSE_REASON_REPLAYED, "replayed"},
      {POLAR_LICENSE_REASON_SEATS_FULL, "seats_full"},
      {POLAR_LICENSE_REASON_CREDITS_EXHAUSTED, "credits_exhausted"},
      {POLAR_LICENSE_REASON_SEAT_LOST, "seat_lost"},
  };
  unsigned i;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    CHECK_STR(polar_license_reason_code(i), rows[i].code);
  }
  /* The first number past the table is no reason. */
  CHECK_STR(polar_license_reason_code((uint32_t)(sizeof rows / sizeof rows[0])), "");
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    CHECK_INT(rows[i].reason, i);
  }
  CHECK_STR(polar_license_outcome_name(POLAR_LICENSE_OUTCOME_LICENSED), "licensed");
  CHECK_STR(polar_license_outcome_name(POLAR_LICENSE_OUTCOME_DENIED), "denied");
  CHECK_STR(polar_license_outcome_name(POLAR_LICENSE_OUTCOME_UNVERIFIED), "unverified");
  CHECK_STR(polar_license_outcome_name(POLAR_LICENSE_OUTCOME_ERROR), "error");
  CHECK_STR(polar_license_outcome_name(POLAR_LICENSE_OUTCOME_DONE), "done");
  CHECK_STR(polar_license_outcome_name(0), "");
}

static void licensed_with_every_number(void) {
  char key[64];
  polar_license_result *r;
  int64_t left = 0;
  emu_new_key("\"limit_usage\":10,\"usage\":3,\"limit_activations\":2,"
              "\"expires_at\":\"2099-01-01T00:00:00Z\"",
              key);
  r = validate_key(key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK(polar_license_result_is_licensed(r));
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  CHECK_INT(polar_license_result_http_status(r), 200);
  CHECK_INT(polar_license_result_usage(r), 3);
  CHECK_INT(polar_license_result_limit_usage(r), 10);
  CHECK_INT(polar_license_result_limit_activations(r), 2);
  CHECK_INT(polar_license_result_validations(r), 1);
  CHECK_INT(polar_license_result_expires_at(r), 4070908800LL);
  CHECK(polar_license_result_remaining_usages(r, &left));
  CHECK_INT(left, 7);
  CHECK_INT(polar_license_result_grace_remaining_seconds(r), -1);
  CHECK_INT(polar_license_result_retry_after_seconds(r), -1);
  CHECK_STR(polar_license_result_detail(r), "");
  CHECK_STR(polar_license_result_activation_id(r), "");
  CHECK(strstr(polar_license_result_license_json(r), "\"status\":\"granted\"") != NULL);
  CHECK(strstr(polar_license_result_license_json(r), DEMO_BENEFIT) != NULL);
  polar_license_result_free(r);
}

static void not_found(void) {
  polar_license_result *r = validate_key("NO-SUCH-KEY-0000");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  CHECK_INT(polar_license_result_http_status(r), 404);
  CHECK_STR(polar_license_result_detail(r), "Not found");
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
}

static void inactive(void) {
  char revoked[64], disabled[64];
  polar_license_result *r;
  emu_new_key("\"status\":\"revoked\"", revoked);
  r = validate_key(revoked);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  CHECK_STR(polar_license_result_detail(r), "License key is no longer active.");
  polar_license_result_free(r);
  emu_new_key("", disabled);
  emu_patch_key(disabled, "{\"status\":\"disabled\"}");
  r = validate_key(disabled);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  polar_license_result_free(r);
}

static void expired(void) {
  char key[64];
  polar_license_result *r;
  emu_new_key("\"expires_at\":\"2024-01-01T00:00:00Z\"", key);
  r = validate_key(key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_EXPIRED);
  CHECK_STR(polar_license_result_detail(r), "License key has expired.");
  polar_license_result_free(r);
}

static void conditions_mismatch(void) {
  char key[64], id[64];
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request;
  polar_license_result *r = NULL;
  emu_new_key("\"limit_activations\":3", key);
  /* Activate with a condition (the machine fingerprint is added too). */
  request = new_request(key);
  polar_license_request_set_label(request, "seat");
  polar_license_request_add_condition_string(request, "edition", "pro");
  polar_license_request_add_condition_int(request, "major", 2);
  polar_license_request_add_meta_string(request, "hostname", "build-box");
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  snprintf(id, sizeof id, "%s", polar_license_result_activation_id(r));
  CHECK(strlen(id) == 36);
  polar_license_result_free(r);
  polar_license_request_free(request);
  /* Validate that activation with other conditions. */
  request = new_request(key);
  polar_license_request_set_activation_id(request, id);
  polar_license_request_add_condition_string(request, "edition", "basic");
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_CONDITIONS_MISMATCH);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void benefit_mismatch(void) {
  char key[64];
  polar_license_request *request;
  polar_license_result *r;
  emu_new_key("", key);
  request = new_request(key);
  polar_license_request_set_benefit_id(request, OTHER_UUID);
  r = validate(request);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_BENEFIT_MISMATCH);
  polar_license_result_free(r);
  /* The right benefit and customer: licensed. */
  polar_license_request_set_benefit_id(request, DEMO_BENEFIT);
  polar_license_request_set_customer_id(request, DEMO_CUSTOMER);
  r = validate(request);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  polar_license_request_free(request);
}

static void customer_mismatch(void) {
  char key[64];
  polar_license_request *request;
  polar_license_result *r;
  emu_new_key("", key);
  request = new_request(key);
  polar_license_request_set_customer_id(request, OTHER_UUID);
  r = validate(request);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_CUSTOMER_MISMATCH);
  polar_license_result_free(r);
  polar_license_request_free(request);
}

static void usage_exhausted(void) {
  char key[64];
  polar_license_request *request;
  polar_license_result *r;
  int64_t left = -99;
  emu_new_key("\"limit_usage\":10,\"usage\":9", key);
  request = new_request(key);
  polar_license_request_set_increment_usage(request, 5);
  r = validate(request);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_USAGE_EXHAUSTED);
  CHECK_INT(polar_license_result_http_status(r), 400);
  CHECK(polar_license_result_remaining_usages(r, &left));
  CHECK_INT(left, 1);
  polar_license_result_free(r);
  /* One more usage fits. */
  polar_license_request_set_increment_usage(request, 1);
  r = validate(request);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_usage(r), 10);
  polar_license_result_free(r);
  polar_license_request_free(request);
}

static void activation_limit(void) {
  char key[64], id[64];
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request;
  polar_license_result *r = NULL;
  activated_key(client, "\"limit_activations\":1", key, id);
  request = new_request(key);
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_ACTIVATION_LIMIT);
  CHECK_INT(polar_license_result_http_status(r), 403);
  polar_license_result_free(r);
  /* Deactivating frees the slot; a second deactivate is not_found. */
  must(polar_license_client_deactivate(client, key, id, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_http_status(r), 204);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  must(polar_license_client_deactivate(client, key, id, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  polar_license_result_free(r);
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void activations_not_supported(void) {
  char key[64];
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request;
  polar_license_result *r = NULL;
  emu_new_key("", key); /* limit_activations null */
  request = new_request(key);
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_ACTIVATIONS_NOT_SUPPORTED);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void offline(void) {
  char url[64];
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  polar_license_request *request = new_request("ANY-KEY");
  polar_license_result *r = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
  config = demo_config(url, cache);
  client = client_of(config);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  CHECK_INT(polar_license_result_http_status(r), 0);
  CHECK(strlen(polar_license_result_detail(r)) > 0);
  polar_license_result_free(r);
  /* check with no cache: offline as it is. */
  must(polar_license_client_check(client, "ANY-KEY", &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void offline_by_connection_closed(void) {
  polar_license_result *r;
  emu_fault("{\"kind\":\"close_immediately\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  polar_license_result_free(r);
}

static void rate_limited(void) {
  polar_license_result *r;
  emu_fault("{\"kind\":\"rate_limited\",\"retry_after\":7}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_RATE_LIMITED);
  CHECK_INT(polar_license_result_http_status(r), 429);
  CHECK_INT(polar_license_result_retry_after_seconds(r), 7);
  polar_license_result_free(r);
  emu_fault("{\"kind\":\"status\",\"status\":429,\"body\":\"\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_RATE_LIMITED);
  CHECK_INT(polar_license_result_retry_after_seconds(r), -1);
  polar_license_result_free(r);
}

static void server_error(void) {
  polar_license_result *r;
  emu_fault("{\"kind\":\"status\",\"status\":500,\"body\":\"Internal Server Error\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_SERVER_ERROR);
  CHECK_INT(polar_license_result_http_status(r), 500);
  polar_license_result_free(r);
}

static void protocol_error(void) {
  polar_license_result *r;
  emu_fault("{\"kind\":\"malformed\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  polar_license_result_free(r);
  emu_fault("{\"kind\":\"truncated\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  polar_license_result_free(r);
  /* A 404 is not_found only inside Polar's error envelope: a bare `{"detail":"Not Found"}`
   * (a wrong base path, a CDN) is no verdict. */
  emu_fault("{\"kind\":\"respond\",\"status\":404,\"headers\":[[\"content-type\","
            "\"application/json\"]],\"body\":\"{\\\"detail\\\":\\\"Not Found\\\"}\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  CHECK_INT(polar_license_result_http_status(r), 404);
  polar_license_result_free(r);
  /* Nor is a login page's 200. */
  emu_fault("{\"kind\":\"respond\",\"status\":200,\"headers\":[[\"content-type\","
            "\"text/html\"]],\"body\":\"<html>Hotel Wi-Fi login</html>\"}");
  r = validate_key("ANY-KEY");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  polar_license_result_free(r);
}

static void invalid_input_sends_nothing(void) {
  polar_license_request *request = new_request("SOME-KEY");
  polar_license_result *r;
  long before = emu_request_count();
  polar_license_request_set_activation_id(request, "not-a-uuid");
  r = validate(request);
  CHECK_INVALID(r, "activation_id");
  CHECK_INT(polar_license_result_http_status(r), 0);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_NONE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  CHECK_INT(emu_request_count(), before);
}

static void cache_error(void) {
  char key[64];
  polar_license_client *client = new_client("/dev/null/polar-license", 0, 3600, 604800);
  polar_license_request *request;
  polar_license_result *r = NULL;
  long before;
  emu_new_key("\"limit_activations\":1", key);
  /* activate opens the cache first: cache_error, and no activation slot is taken. */
  request = new_request(key);
  before = emu_request_count();
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
  CHECK(strlen(polar_license_result_detail(r)) > 0);
  CHECK_INT(emu_request_count(), before);
  polar_license_result_free(r);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
  polar_license_result_free(r);
  /* An explicit deactivate still works online; without an id, cache_error. */
  must(polar_license_client_deactivate(client, key, OTHER_UUID, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_NOT_FOUND);
  polar_license_result_free(r);
  must(polar_license_client_deactivate(client, key, NULL, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_CACHE_ERROR);
  polar_license_result_free(r);
  /* check still answers online when the cache cannot be used. */
  EXPECT_CHECK_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                    POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

int main(void) {
  temp_dir(cache);
  RUN(reason_table_matches_the_contract);
  RUN(licensed_with_every_number);
  RUN(not_found);
  RUN(inactive);
  RUN(expired);
  RUN(conditions_mismatch);
  RUN(benefit_mismatch);
  RUN(customer_mismatch);
  RUN(usage_exhausted);
  RUN(activation_limit);
  RUN(activations_not_supported);
  RUN(offline);
  RUN(offline_by_connection_closed);
  RUN(rate_limited);
  RUN(server_error);
  RUN(protocol_error);
  RUN(invalid_input_sends_nothing);
  RUN(cache_error);
  remove_tree(cache);
  return harness_summary("test_reasons");
}
