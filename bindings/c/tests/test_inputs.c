/*
 * test_inputs.c: bad inputs through the C API: NULL pointers everywhere, invalid UTF-8, bad
 * UUIDs, oversized metadata, bad configuration, out-pointers left alone on failure, the
 * per-handle last error, and the version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define OK POLAR_LICENSE_STATUS_OK
#define NUL_ARG POLAR_LICENSE_STATUS_NULL_ARGUMENT
#define BAD_UTF8 POLAR_LICENSE_STATUS_INVALID_UTF8
#define BAD_INPUT POLAR_LICENSE_STATUS_INVALID_INPUT

static const char bad_utf8[] = {(char)0xff, (char)0xfe, 'x', 0};
static char cache[64];

static void version(void) {
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", POLAR_LICENSE_VERSION_MAJOR,
           POLAR_LICENSE_VERSION_MINOR, POLAR_LICENSE_VERSION_PATCH);
  CHECK_STR(POLAR_LICENSE_VERSION, expected);
  CHECK_STR(polar_license_version(), POLAR_LICENSE_VERSION);
}

static void status_messages(void) {
  CHECK_STR(polar_license_status_message(OK), "ok");
  CHECK(strstr(polar_license_status_message(NUL_ARG), "NULL") != NULL);
  CHECK(strstr(polar_license_status_message(BAD_UTF8), "UTF-8") != NULL);
  CHECK(strlen(polar_license_status_message(BAD_INPUT)) > 0);
  CHECK(strstr(polar_license_status_message(POLAR_LICENSE_STATUS_PANIC), "panic") != NULL);
  CHECK(strstr(polar_license_status_message(POLAR_LICENSE_STATUS_CACHE_ERROR), "cache") != NULL);
  CHECK_STR(polar_license_status_message(999), "unknown status");
  CHECK_INT(OK, 0);
  CHECK_INT(NUL_ARG, 1);
  CHECK_INT(BAD_UTF8, 2);
  CHECK_INT(BAD_INPUT, 3);
  CHECK_INT(POLAR_LICENSE_STATUS_PANIC, 4);
  CHECK_INT(POLAR_LICENSE_STATUS_CACHE_ERROR, 5);
}

static void free_null_is_a_no_op(void) {
  polar_license_config_free(NULL);
  polar_license_client_free(NULL);
  polar_license_request_free(NULL);
  polar_license_result_free(NULL);
  CHECK(1);
}

static void config_null_arguments(void) {
  polar_license_config *config = NULL;
  CHECK_INT(polar_license_config_new(NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_organization(NULL, DEMO_ORG), NUL_ARG);
  CHECK_INT(polar_license_config_set_server(NULL, POLAR_LICENSE_SERVER_SANDBOX), NUL_ARG);
  CHECK_INT(polar_license_config_set_proxy(NULL, ""), NUL_ARG);
  CHECK_INT(polar_license_config_set_tls_roots(NULL, POLAR_LICENSE_TLS_ROOTS_SYSTEM), NUL_ARG);
  CHECK_INT(polar_license_config_set_base_url(NULL, "https://example.com"), NUL_ARG);
  CHECK_INT(polar_license_config_set_portal_url(NULL, "https://example.com"), NUL_ARG);
  CHECK_INT(polar_license_config_set_relay_url(NULL, "https://example.com"), NUL_ARG);
  CHECK_INT(polar_license_config_set_timeout_ms(NULL, 1000), NUL_ARG);
  CHECK_INT(polar_license_config_set_connect_timeout_ms(NULL, 1000), NUL_ARG);
  CHECK_INT(polar_license_config_set_cache_dir(NULL, "/tmp"), NUL_ARG);
  CHECK_INT(polar_license_config_set_grace_policy(NULL, 1, 2, 1), NUL_ARG);
  CHECK_INT(polar_license_config_set_app_secret(NULL, (const uint8_t *)"x", 1), NUL_ARG);
  CHECK_INT(polar_license_config_set_machine_binding(NULL, false), NUL_ARG);
  CHECK_INT(polar_license_config_set_clock_offset_for_testing(NULL, 1), NUL_ARG);
  CHECK_STR(polar_license_config_last_error(NULL), "");
  must(polar_license_config_new(&config));
  CHECK_INT(polar_license_config_set_organization(config, NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_base_url(config, NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_portal_url(config, NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_relay_url(config, NULL), NUL_ARG);
  CHECK_INT(polar_license_config_set_cache_dir(config, NULL), NUL_ARG);
  /* The last error says why, naming the argument, never an earlier call's words. */
  CHECK_INT(polar_license_config_set_organization(config, "nope"), BAD_INPUT);
  CHECK_INT(polar_license_config_set_cache_dir(config, NULL), NUL_ARG);
  CHECK_STR(polar_license_config_last_error(config), "cache_dir is NULL");
  CHECK_INT(polar_license_config_set_app_secret(config, NULL, 0), NUL_ARG);
  /* A length past any secret's ((size_t)-1 by mistake) is refused before a byte is read. */
  CHECK_INT(polar_license_config_set_app_secret(config, (const uint8_t *)"x", SIZE_MAX), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "app_secret") != NULL);
  CHECK_INT(polar_license_config_set_app_secret(config, (const uint8_t *)"x", 1), OK);
  CHECK_INT(polar_license_client_new(NULL, NULL), NUL_ARG);
  CHECK_INT(polar_license_client_new(config, NULL), NUL_ARG);
  polar_license_config_free(config);
}

static void config_invalid_utf8(void) {
  polar_license_config *config = new_config();
  CHECK_INT(polar_license_config_set_organization(config, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_config_set_base_url(config, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_config_set_portal_url(config, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_config_set_relay_url(config, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_config_set_cache_dir(config, bad_utf8), BAD_UTF8);
  CHECK_STR(polar_license_config_last_error(config), "cache_dir is not valid UTF-8");
  polar_license_config_free(config);
}

static void config_bad_values(void) {
  polar_license_config *config = NULL;
  polar_license_client *client = (polar_license_client *)&config; /* a sentinel */
  polar_license_client *const sentinel = client;
  must(polar_license_config_new(&config));
  /* No organization yet: client_new refuses, and leaves the out-pointer alone. */
  CHECK_INT(polar_license_client_new(config, &client), BAD_INPUT);
  CHECK(client == sentinel);
  CHECK(strstr(polar_license_config_last_error(config), "organization_id") != NULL);
  /* Bad UUIDs. */
  CHECK_INT(polar_license_config_set_organization(config, "not-a-uuid"), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "organization_id") != NULL);
  CHECK_INT(polar_license_config_set_organization(config, "2d4f1b7e-6c1a-1c39-9a55-0a4c1e2b7f10"),
            BAD_INPUT); /* version 1 */
  CHECK_INT(polar_license_config_set_organization(config, ""), BAD_INPUT);
  /* A good call clears the last error. */
  CHECK_INT(polar_license_config_set_organization(config, DEMO_ORG), OK);
  CHECK_STR(polar_license_config_last_error(config), "");
  CHECK_INT(polar_license_config_set_server(config, 0), BAD_INPUT);
  CHECK_INT(polar_license_config_set_server(config, 99), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "server") != NULL);
  CHECK_INT(polar_license_config_set_server(config, POLAR_LICENSE_SERVER_SANDBOX), OK);
  CHECK_INT(polar_license_config_set_server(config, POLAR_LICENSE_SERVER_PRODUCTION), OK);
  CHECK_INT(polar_license_config_set_base_url(config, "http://example.com"), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "base_url") != NULL);
  CHECK_INT(polar_license_config_set_base_url(config, "ftp://127.0.0.1"), BAD_INPUT);
  CHECK_INT(polar_license_config_set_portal_url(config, "http://polar.example.com"), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "portal_url") != NULL);
  CHECK_INT(polar_license_config_set_portal_url(config, "https://api.polar.sh"), OK);
  /* The seller's relay: checked as a base URL is, the refusal naming relay_url. */
  CHECK_INT(polar_license_config_set_relay_url(config, "http://relay.example.com"), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "relay_url") != NULL);
  CHECK_INT(polar_license_config_set_relay_url(config, "https://relay.example.com"), OK);
  CHECK_STR(polar_license_config_last_error(config), "");
  CHECK_INT(polar_license_config_set_timeout_ms(config, 0), BAD_INPUT);
  CHECK_INT(polar_license_config_set_connect_timeout_ms(config, 0), BAD_INPUT);
  CHECK_INT(polar_license_config_set_cache_dir(config, ""), BAD_INPUT);
  CHECK_INT(polar_license_config_set_grace_policy(config, 3600, 0, 600), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "grace_period") != NULL);
  CHECK_INT(polar_license_config_set_grace_policy(config, 7200, 3600, 600), BAD_INPUT);
  CHECK_INT(polar_license_config_set_grace_policy(config, 3600, 604800, 600), OK);
  CHECK_INT(polar_license_config_set_app_secret(config, (const uint8_t *)"", 0), OK);
  CHECK_INT(polar_license_config_set_machine_binding(config, false), OK);
  /* Proxy and trust store: a URL that is no proxy's is refused without showing its
   * password; NULL (the environment's), "" (direct) and an http:// proxy are taken. */
  CHECK_INT(polar_license_config_set_proxy(config, "socks5://user:s3cret@proxy.corp:1080"),
            BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "proxy") != NULL);
  CHECK(strstr(polar_license_config_last_error(config), "s3cret") == NULL);
  CHECK_INT(polar_license_config_set_proxy(config, "proxy.corp:3128"), BAD_INPUT);
  CHECK_INT(polar_license_config_set_proxy(config, "http://user:s3cret@proxy.corp:3128"), OK);
  CHECK_INT(polar_license_config_set_proxy(config, ""), OK);
  CHECK_INT(polar_license_config_set_proxy(config, NULL), OK);
  CHECK_INT(polar_license_config_set_tls_roots(config, 0), BAD_INPUT);
  CHECK_INT(polar_license_config_set_tls_roots(config, 99), BAD_INPUT);
  CHECK(strstr(polar_license_config_last_error(config), "tls_roots") != NULL);
  CHECK_INT(polar_license_config_set_tls_roots(config, POLAR_LICENSE_TLS_ROOTS_BUNDLED), OK);
  CHECK_INT(polar_license_config_set_tls_roots(config, POLAR_LICENSE_TLS_ROOTS_SYSTEM), OK);
  CHECK_INT(polar_license_config_set_cache_dir(config, cache), OK);
  /* With the organization set the client builds (production; nothing is sent). */
  CHECK_INT(polar_license_client_new(config, &client), OK);
  CHECK(client != sentinel && client != NULL);
  CHECK_STR(polar_license_client_machine_fingerprint(client), ""); /* binding is off */
  CHECK_STR(polar_license_client_machine_fingerprint(NULL), "");
  polar_license_client_free(client);
  polar_license_config_free(config);
}

static void request_null_and_utf8(void) {
  polar_license_request *request = NULL, *const sentinel = (polar_license_request *)&request;
  polar_license_request *out = sentinel;
  CHECK_INT(polar_license_request_new(NULL, &out), NUL_ARG);
  CHECK_INT(polar_license_request_new("KEY", NULL), NUL_ARG);
  CHECK_INT(polar_license_request_new(bad_utf8, &out), BAD_UTF8);
  CHECK(out == sentinel);
  CHECK_INT(polar_license_request_set_label(NULL, "x"), NUL_ARG);
  CHECK_INT(polar_license_request_set_activation_id(NULL, "x"), NUL_ARG);
  CHECK_INT(polar_license_request_set_benefit_id(NULL, "x"), NUL_ARG);
  CHECK_INT(polar_license_request_set_customer_id(NULL, "x"), NUL_ARG);
  CHECK_INT(polar_license_request_set_increment_usage(NULL, 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_string(NULL, "a", "b"), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_int(NULL, "a", 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_double(NULL, "a", 1.5), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_bool(NULL, "a", true), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_string(NULL, "a", "b"), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_int(NULL, "a", 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_double(NULL, "a", 1.5), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_bool(NULL, "a", true), NUL_ARG);
  must(polar_license_request_new("KEY", &request));
  CHECK_INT(polar_license_request_set_label(request, NULL), NUL_ARG);
  CHECK_INT(polar_license_request_set_activation_id(request, NULL), NUL_ARG);
  CHECK_INT(polar_license_request_set_benefit_id(request, NULL), NUL_ARG);
  CHECK_INT(polar_license_request_set_customer_id(request, NULL), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_string(request, NULL, "b"), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_string(request, "a", NULL), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_int(request, NULL, 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_double(request, NULL, 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_condition_bool(request, NULL, false), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_string(request, NULL, "b"), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_string(request, "a", NULL), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_int(request, NULL, 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_double(request, NULL, 1), NUL_ARG);
  CHECK_INT(polar_license_request_add_meta_bool(request, NULL, false), NUL_ARG);
  CHECK_INT(polar_license_request_set_label(request, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_set_activation_id(request, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_set_benefit_id(request, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_set_customer_id(request, bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_add_condition_string(request, bad_utf8, "b"), BAD_UTF8);
  CHECK_INT(polar_license_request_add_condition_string(request, "a", bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_add_meta_string(request, "a", bad_utf8), BAD_UTF8);
  CHECK_INT(polar_license_request_add_meta_int(request, bad_utf8, 1), BAD_UTF8);
  polar_license_request_free(request);
}

static void client_null_and_utf8(void) {
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request = new_request("KEY");
  polar_license_result *const sentinel = (polar_license_result *)&request;
  polar_license_result *r = sentinel;
  long before = emu_request_count();
  CHECK_INT(polar_license_client_validate(NULL, request, &r), NUL_ARG);
  CHECK_INT(polar_license_client_validate(client, NULL, &r), NUL_ARG);
  CHECK(strstr(polar_license_client_last_error(client), "request") != NULL);
  CHECK_INT(polar_license_client_validate(client, request, NULL), NUL_ARG);
  CHECK(strstr(polar_license_client_last_error(client), "out_result") != NULL);
  CHECK_INT(polar_license_client_activate(NULL, request, &r), NUL_ARG);
  CHECK_INT(polar_license_client_activate(client, NULL, &r), NUL_ARG);
  CHECK_INT(polar_license_client_activate(client, request, NULL), NUL_ARG);
  CHECK_INT(polar_license_client_check_request(NULL, request, &r), NUL_ARG);
  CHECK_INT(polar_license_client_check_request(client, NULL, &r), NUL_ARG);
  CHECK_INT(polar_license_client_check_request(client, request, NULL), NUL_ARG);
  CHECK_INT(polar_license_client_check(NULL, "KEY", &r), NUL_ARG);
  CHECK_INT(polar_license_client_check(client, NULL, &r), NUL_ARG);
  CHECK(strstr(polar_license_client_last_error(client), "key") != NULL);
  CHECK_INT(polar_license_client_check(client, "KEY", NULL), NUL_ARG);
  CHECK_INT(polar_license_client_status(NULL, "KEY", &r), NUL_ARG);
  CHECK_INT(polar_license_client_status(client, NULL, &r), NUL_ARG);
  CHECK_INT(polar_license_client_status(client, "KEY", NULL), NUL_ARG);
  CHECK_INT(polar_license_client_deactivate(NULL, "KEY", NULL, &r), NUL_ARG);
  CHECK_INT(polar_license_client_deactivate(client, NULL, NULL, &r), NUL_ARG);
  CHECK_INT(polar_license_client_deactivate(client, "KEY", NULL, NULL), NUL_ARG);
  CHECK_INT(polar_license_client_check(client, bad_utf8, &r), BAD_UTF8);
  CHECK(strstr(polar_license_client_last_error(client), "UTF-8") != NULL);
  CHECK_INT(polar_license_client_status(client, bad_utf8, &r), BAD_UTF8);
  CHECK_INT(polar_license_client_deactivate(client, bad_utf8, NULL, &r), BAD_UTF8);
  CHECK_INT(polar_license_client_deactivate(client, "KEY", bad_utf8, &r), BAD_UTF8);
  CHECK(strstr(polar_license_client_last_error(client), "activation_id") != NULL);
  CHECK(r == sentinel); /* never written on failure */
  CHECK_STR(polar_license_client_last_error(NULL), "");
  /* A successful call clears the thread's last error. */
  CHECK_INT(polar_license_client_status(client, "KEY", &r), OK);
  CHECK_STR(polar_license_client_last_error(client), "");
  polar_license_result_free(r);
  CHECK_INT(emu_request_count(), before); /* nothing was sent */
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void result_accessors_on_null(void) {
  int64_t n = 42;
  CHECK_INT(polar_license_result_outcome(NULL), POLAR_LICENSE_OUTCOME_ERROR);
  CHECK(!polar_license_result_is_licensed(NULL));
  CHECK_INT(polar_license_result_reason(NULL), POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_source(NULL), POLAR_LICENSE_SOURCE_NONE);
  CHECK_INT(polar_license_result_cache_state(NULL), POLAR_LICENSE_CACHE_STATE_NONE);
  CHECK_INT(polar_license_result_http_status(NULL), 0);
  CHECK_INT(polar_license_result_expires_at(NULL), -1);
  CHECK_INT(polar_license_result_usage(NULL), -1);
  CHECK_INT(polar_license_result_limit_usage(NULL), -1);
  CHECK_INT(polar_license_result_limit_activations(NULL), -1);
  CHECK_INT(polar_license_result_validations(NULL), -1);
  CHECK_INT(polar_license_result_grace_remaining_seconds(NULL), -1);
  CHECK_INT(polar_license_result_verified_at(NULL), -1);
  CHECK_INT(polar_license_result_retry_after_seconds(NULL), -1);
  CHECK(!polar_license_result_remaining_usages(NULL, &n));
  CHECK_INT(n, 42);
  CHECK_STR(polar_license_result_detail(NULL), "");
  CHECK_STR(polar_license_result_field(NULL), "");
  CHECK_STR(polar_license_result_activation_id(NULL), "");
  CHECK_STR(polar_license_result_license_json(NULL), "");
}

/* Validates `request` and expects invalid_input naming `field`, with nothing sent. */
static void expect_invalid(polar_license_client *client, polar_license_request *request,
                           int activate, const char *field) {
  polar_license_result *r = NULL;
  long before = emu_request_count();
  if (activate) {
    must(polar_license_client_activate(client, request, &r));
  } else {
    must(polar_license_client_validate(client, request, &r));
  }
  CHECK_INVALID(r, field);
  CHECK_INT(emu_request_count(), before);
  polar_license_result_free(r);
}

static void bad_uuids_are_refused_locally(void) {
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request = new_request("KEY");
  polar_license_request_set_activation_id(request, "1234");
  expect_invalid(client, request, 0, "activation_id");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_set_benefit_id(request, "2d4f1b7e-6c1a-1c39-9a55-0a4c1e2b7f10");
  expect_invalid(client, request, 0, "benefit_id");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_set_customer_id(request, "");
  expect_invalid(client, request, 0, "customer_id");
  polar_license_request_free(request);
  request = new_request("");
  expect_invalid(client, request, 0, "key");
  polar_license_request_free(request);
  /* A key pasted with its line break. */
  request = new_request("KEY\n");
  expect_invalid(client, request, 0, "key");
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void oversized_metadata_is_refused_locally(void) {
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request = new_request("KEY");
  char name[64], long_name[42], long_value[502];
  int i;
  /* 51 conditions (at most 50). */
  for (i = 0; i < 51; i++) {
    snprintf(name, sizeof name, "k%d", i);
    must(polar_license_request_add_condition_int(request, name, i));
  }
  expect_invalid(client, request, 0, "conditions");
  polar_license_request_free(request);
  /* A 41-character key (at most 40). */
  memset(long_name, 'n', 41);
  long_name[41] = 0;
  request = new_request("KEY");
  polar_license_request_add_condition_bool(request, long_name, true);
  expect_invalid(client, request, 0, "conditions");
  polar_license_request_free(request);
  /* A 501-character string (at most 500), in meta on activate. */
  memset(long_value, 'v', 501);
  long_value[501] = 0;
  request = new_request("KEY");
  polar_license_request_add_meta_string(request, "note", long_value);
  expect_invalid(client, request, 1, "meta.note");
  polar_license_request_free(request);
  /* An empty string, and a float that is not finite. */
  request = new_request("KEY");
  polar_license_request_add_condition_string(request, "empty", "");
  expect_invalid(client, request, 0, "conditions.empty");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_add_meta_double(request, "ratio", (double)NAN);
  expect_invalid(client, request, 1, "meta.ratio");
  polar_license_request_free(request);
  /* increment_usage must be 0..2^31-1. */
  request = new_request("KEY");
  polar_license_request_set_increment_usage(request, -1);
  expect_invalid(client, request, 0, "increment_usage");
  polar_license_request_set_increment_usage(request, 2147483648LL);
  expect_invalid(client, request, 0, "increment_usage");
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void fields_an_operation_ignores_are_refused(void) {
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request = new_request("KEY");
  polar_license_request_set_label(request, "seat");
  expect_invalid(client, request, 0, "label");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_add_meta_int(request, "n", 1);
  expect_invalid(client, request, 0, "meta");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_set_activation_id(request, OTHER_UUID);
  expect_invalid(client, request, 1, "activation_id");
  polar_license_request_free(request);
  request = new_request("KEY");
  polar_license_request_set_increment_usage(request, 1);
  expect_invalid(client, request, 1, "increment_usage");
  polar_license_request_free(request);
  polar_license_client_free(client);
}

static void metadata_types_reach_the_server(void) {
  char key[64];
  polar_license_client *client = new_client(cache, 0, 3600, 604800);
  polar_license_request *request;
  polar_license_result *r = NULL;
  emu_new_key("\"limit_activations\":2", key);
  request = new_request(key);
  polar_license_request_set_label(request, "typed");
  polar_license_request_add_condition_string(request, "s", "text \"quoted\" \\ and \xc3\xa9");
  polar_license_request_add_condition_int(request, "i", -7);
  polar_license_request_add_condition_double(request, "f", 2.5);
  polar_license_request_add_condition_bool(request, "b", true);
  polar_license_request_add_condition_int(request, "i", 8); /* replaces */
  polar_license_request_add_meta_bool(request, "m", false);
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  polar_license_client_free(client);
}

int main(void) {
  temp_dir(cache);
  RUN(version);
  RUN(status_messages);
  RUN(free_null_is_a_no_op);
  RUN(config_null_arguments);
  RUN(config_invalid_utf8);
  RUN(config_bad_values);
  RUN(request_null_and_utf8);
  RUN(client_null_and_utf8);
  RUN(result_accessors_on_null);
  RUN(bad_uuids_are_refused_locally);
  RUN(oversized_metadata_is_refused_locally);
  RUN(fields_an_operation_ignores_are_refused);
  RUN(metadata_types_reach_the_server);
  remove_tree(cache);
  return harness_summary("test_inputs");
}
