/*
 * test_threads.c: one client handle used by several pthreads at once (check, validate,
 * status), and the per-thread last error.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define THREADS 8
#define ROUNDS 6

struct work {
  polar_license_client *client;
  const polar_license_request *request; /* shared, read-only */
  const char *key;
  int index;
  int licensed;
  int last_error_ok;
};

static void *worker(void *arg) {
  struct work *w = arg;
  static const char bad[] = {(char)0xc3, 0};
  int i;
  for (i = 0; i < ROUNDS; i++) {
    polar_license_result *r = NULL;
    polar_license_status status;
    switch ((w->index + i) % 3) {
      case 0:
        status = polar_license_client_check(w->client, w->key, &r);
        break;
      case 1:
        status = polar_license_client_validate(w->client, w->request, &r);
        break;
      default:
        status = polar_license_client_check_request(w->client, w->request, &r);
        break;
    }
    if (status == POLAR_LICENSE_STATUS_OK && polar_license_result_is_licensed(r)) {
      w->licensed++;
    } else {
      fprintf(stderr, "thread %d: %s %s\n", w->index,
              polar_license_reason_code(polar_license_result_reason(r)),
              polar_license_result_detail(r));
    }
    polar_license_result_free(r);
    /* Odd threads fail a call; their last error must survive the other threads' calls and
     * be theirs alone. */
    if (w->index % 2 == 1) {
      if (polar_license_client_status(w->client, bad, &r) == POLAR_LICENSE_STATUS_INVALID_UTF8 &&
          strstr(polar_license_client_last_error(w->client), "UTF-8") != NULL) {
        w->last_error_ok++;
      }
    } else if (polar_license_client_last_error(w->client)[0] == '\0') {
      w->last_error_ok++;
    }
  }
  return NULL;
}

static void one_client_many_threads(void) {
  char dir[64], key[64], id[64];
  polar_license_client *client;
  polar_license_request *request;
  pthread_t threads[THREADS];
  struct work work[THREADS];
  int i;
  client = cached_client(dir, 0, 604800); /* every check asks the server */
  activated_key(client, "\"limit_activations\":1", key, id);
  request = new_request(key);
  polar_license_request_set_activation_id(request, id);
  /* The activation is bound to this machine: validate with the same fingerprint. */
  CHECK(strlen(polar_license_client_machine_fingerprint(client)) > 0);
  polar_license_request_add_condition_string(request, "machine_fingerprint",
                                             polar_license_client_machine_fingerprint(client));
  for (i = 0; i < THREADS; i++) {
    work[i].client = client;
    work[i].request = request;
    work[i].key = key;
    work[i].index = i;
    work[i].licensed = 0;
    work[i].last_error_ok = 0;
    CHECK_INT(pthread_create(&threads[i], NULL, worker, &work[i]), 0);
  }
  for (i = 0; i < THREADS; i++) {
    CHECK_INT(pthread_join(threads[i], NULL), 0);
    CHECK_INT(work[i].licensed, ROUNDS);
    CHECK_INT(work[i].last_error_ok, ROUNDS);
  }
  /* The main thread made no failed call: its last error is empty. */
  CHECK_STR(polar_license_client_last_error(client), "");
  polar_license_request_free(request);
  client_done(client, dir);
}

/* Results made on one thread are read and freed on another. */
static void *read_and_free(void *arg) {
  polar_license_result *r = arg;
  int *ok = malloc(sizeof *ok);
  *ok = polar_license_result_is_licensed(r) &&
        strlen(polar_license_result_license_json(r)) > 0;
  polar_license_result_free(r);
  return ok;
}

static void results_move_between_threads(void) {
  char dir[64], key[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  pthread_t thread;
  void *ok = NULL;
  client = cached_client(dir, 3600, 604800);
  emu_new_key("", key);
  r = check(client, key);
  CHECK_INT(pthread_create(&thread, NULL, read_and_free, r), 0);
  CHECK_INT(pthread_join(thread, &ok), 0);
  CHECK(ok != NULL && *(int *)ok == 1);
  free(ok);
  client_done(client, dir);
}

int main(void) {
  RUN(one_client_many_threads);
  RUN(results_move_between_threads);
  return harness_summary("test_threads");
}
