/*
 * test_trust.c: issue #12 through the C API, where the C layer has its own code: validate goes
 * through the grace-aware face (the machine's fingerprint is sent, the answer updates the
 * record), a check reports why it answered from the cache and whether the cache was written,
 * and threads checking while Polar hangs do not queue behind the one asking.
 * (tests/trust.rs plays every attack of the issue against the shared Rust core.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define HOUR 3600
#define WEEK (7 * 24 * HOUR)

static polar_license_result *check(polar_license_client *client, const char *key) {
  polar_license_result *r = NULL;
  must(polar_license_client_check(client, key, &r));
  return r;
}

/* activate --condition machine=abc, then validate --activation-id ID --condition machine=abc on
 * the same machine: licensed (the fingerprint activate added is sent by validate too). A
 * revocation validate sees is the next check's: no grant from the cache. */
static void validate_binds_the_machine_and_updates_the_record(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  temp_dir(dir);
  client = new_client(dir, 0, HOUR, WEEK);
  emu_new_key("\"limit_activations\":2", key);
  request = new_request(key);
  must(polar_license_request_set_label(request, "laptop"));
  must(polar_license_request_add_condition_string(request, "machine", "abc"));
  must(polar_license_client_activate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  snprintf(id, sizeof id, "%s", polar_license_result_activation_id(r));
  polar_license_result_free(r);
  polar_license_request_free(request);

  request = new_request(key);
  must(polar_license_request_set_activation_id(request, id));
  must(polar_license_request_add_condition_string(request, "machine", "abc"));
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);

  emu_patch_key(key, "{\"status\":\"revoked\"}");
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DENIED, POLAR_LICENSE_REASON_INACTIVE);
  polar_license_result_free(r);
  polar_license_request_free(request);
  /* Fresh by age, but the denial removed the cache's power to grant: asks, and offline says
   * so instead of licensing. */
  emu_fault("{\"kind\":\"close_immediately\"}");
  r = check(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_UNVERIFIED, POLAR_LICENSE_REASON_OFFLINE);
  polar_license_result_free(r);
  emu_fault(NULL);
  polar_license_client_free(client);
  remove_tree(dir);
}

/* JSON text as a JSON string's content (quotes and backslashes escaped). */
static void escape(const char *in, char *out, size_t len) {
  size_t n = 0;
  for (; *in != '\0' && n + 2 < len; in++) {
    if (*in == '"' || *in == '\\') out[n++] = '\\';
    out[n++] = *in;
  }
  out[n] = '\0';
}

/* A 200 whose license says "revoked" is no grant: protocol_error online, and a check with a
 * good cache answers from it, saying what happened online. */
static void a_200_that_says_revoked_is_no_grant(void) {
  static char answer[16384], escaped[20000], fault[20600];
  char dir[64], key[64], body[256];
  polar_license_client *client;
  polar_license_request *request;
  polar_license_result *r = NULL;
  char *status;
  temp_dir(dir);
  client = new_client(dir, 0, 0, WEEK); /* every check asks */
  emu_new_key("", key);
  r = check(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);

  /* A real answer for the key, its status edited. */
  snprintf(body, sizeof body, "{\"key\":\"%s\",\"organization_id\":\"%s\"}", key, DEMO_ORG);
  CHECK_INT(emu_request("POST", "/v1/customer-portal/license-keys/validate", body, answer,
                        sizeof answer),
            200);
  status = strstr(answer, "\"status\":\"granted\"");
  CHECK(status != NULL);
  if (status == NULL) return;
  memcpy(status, "\"status\":\"revoked\"", strlen("\"status\":\"revoked\""));
  escape(answer, escaped, sizeof escaped);
  snprintf(fault, sizeof fault, "{\"kind\":\"status\",\"status\":200,\"body\":\"%s\"}", escaped);
  emu_fault(fault);

  request = new_request(key);
  must(polar_license_client_validate(client, request, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  CHECK(!polar_license_result_is_licensed(r));
  polar_license_result_free(r);
  polar_license_request_free(request);

  r = check(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_PROTOCOL_ERROR);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
  CHECK(strstr(polar_license_result_detail(r), "status is revoked") != NULL);
  polar_license_result_free(r);
  emu_fault(NULL);
  polar_license_client_free(client);
  remove_tree(dir);
}

/* A cache that cannot be written: the answer stands (asked online, since it cannot be counted
 * from the cache), and the result says the cache was not refreshed, and why. */
static void a_cache_that_cannot_be_written_is_reported(void) {
  char dir[64], key[64], id[64], path[384];
  polar_license_client *client;
  polar_license_result *r = NULL;
  DIR *d;
  struct dirent *entry;
  long before;
  temp_dir(dir);
  client = new_client(dir, 0, HOUR, WEEK);
  emu_new_key("\"limit_activations\":2", key);
  activate_ok(client, key, id);
  /* Every write lock of the directory made a directory: saves fail, reads still work. */
  d = opendir(dir);
  CHECK(d != NULL);
  while (d != NULL && (entry = readdir(d)) != NULL) {
    size_t n = strlen(entry->d_name);
    if (n > 6 && strcmp(entry->d_name + n - 6, ".wlock") == 0) {
      snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
      CHECK_INT(unlink(path), 0);
      CHECK_INT(mkdir(path, 0700), 0);
    }
  }
  if (d != NULL) closedir(d);
  before = emu_request_count();
  r = check(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(emu_request_count() > before);
  CHECK(!polar_license_result_cache_refreshed(r));
  CHECK(polar_license_result_cache_error(r)[0] != '\0');
  polar_license_result_free(r);
  /* NULL-safe. */
  CHECK(!polar_license_result_cache_refreshed(NULL));
  CHECK_STR(polar_license_result_cache_error(NULL), "");
  polar_license_client_free(client);
  remove_tree(dir);
}

struct checker {
  polar_license_client *client;
  const char *key;
  volatile int done;
  int licensed;
  int from_cache;
};

static void *run_check(void *arg) {
  struct checker *c = arg;
  polar_license_result *r = check(c->client, c->key);
  c->licensed = polar_license_result_is_licensed(r);
  c->from_cache = polar_license_result_source(r) == POLAR_LICENSE_SOURCE_CACHE;
  polar_license_result_free(r);
  __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* While one thread's check waits on a hung Polar, the others answer from the cache at once:
 * none queues behind it (the cache lock is never held across the request). */
static void threads_do_not_queue_behind_a_hung_polar(void) {
  enum { OTHERS = 6 };
  char dir[64], url[64], status_body[64];
  struct checker asker, others[OTHERS];
  pthread_t asker_thread, threads[OTHERS];
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  struct timespec step = {0, 10 * 1000 * 1000};
  int port = closed_port(), pid = emu_start_private(port), i, waited;
  temp_dir(dir);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  must(polar_license_config_new(&config));
  must(polar_license_config_set_organization(config, DEMO_ORG));
  must(polar_license_config_set_base_url(config, url));
  must(polar_license_config_set_cache_dir(config, dir));
  must(polar_license_config_set_timeout_ms(config, 60000));
  must(polar_license_client_new(config, &client));
  polar_license_config_free(config);
  {
    char id[64];
    activate_ok(client, DEMO_KEY, id);
  }
  /* Stale from now on (two hours later), and Polar hangs. */
  polar_license_client_free(client);
  must(polar_license_config_new(&config));
  must(polar_license_config_set_organization(config, DEMO_ORG));
  must(polar_license_config_set_base_url(config, url));
  must(polar_license_config_set_cache_dir(config, dir));
  must(polar_license_config_set_timeout_ms(config, 60000));
  must(polar_license_config_set_clock_offset_for_testing(config, 2 * HOUR));
  must(polar_license_client_new(config, &client));
  polar_license_config_free(config);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/fault", "{\"kind\":\"hang\"}", NULL, 0),
            204);
  CHECK_INT(emu_request_at(port, "POST", "/__emulator/requests/reset", "", NULL, 0), 204);
  memset(&asker, 0, sizeof asker);
  asker.client = client;
  asker.key = DEMO_KEY;
  CHECK_INT(pthread_create(&asker_thread, NULL, run_check, &asker), 0);
  /* Until the asker's request reached the hung server (a bounded wait for the event). */
  for (waited = 0; waited < 1000; waited++) {
    status_body[0] = '\0';
    emu_request_at(port, "GET", "/__emulator/requests", NULL, status_body, sizeof status_body);
    if (strstr(status_body, "\"count\":1") != NULL) break;
    nanosleep(&step, NULL);
  }
  CHECK(strstr(status_body, "\"count\":1") != NULL);
  for (i = 0; i < OTHERS; i++) {
    memset(&others[i], 0, sizeof others[i]);
    others[i].client = client;
    others[i].key = DEMO_KEY;
    CHECK_INT(pthread_create(&threads[i], NULL, run_check, &others[i]), 0);
  }
  for (i = 0; i < OTHERS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(others[i].licensed && others[i].from_cache);
  }
  /* They all answered while the asker still waits on Polar (its timeout is a minute). */
  CHECK(!__atomic_load_n(&asker.done, __ATOMIC_SEQ_CST));
  /* Polar goes away: the asker's connection closes and it answers from the cache too. */
  emu_stop_private(pid);
  pthread_join(asker_thread, NULL);
  CHECK(asker.licensed && asker.from_cache);
  polar_license_client_free(client);
  remove_tree(dir);
}

int main(void) {
  RUN(validate_binds_the_machine_and_updates_the_record);
  RUN(a_200_that_says_revoked_is_no_grant);
  RUN(a_cache_that_cannot_be_written_is_reported);
  RUN(threads_do_not_queue_behind_a_hung_polar);
  return harness_summary("test_trust");
}
