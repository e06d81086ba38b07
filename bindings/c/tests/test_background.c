/*
 * test_background.c: polar_license_client_check_in_background, the launch check that never
 * waits for Polar (issue #13): the immediate answer comes from the cache at once while Polar
 * hangs (timed), the fresh answer arrives once on a background thread through the callback,
 * which owns its result; no callback when no request was needed; the client may be freed
 * before the callback runs; NULL arguments are refused.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define HOUR 3600
#define WEEK (7 * 24 * HOUR)

/* What the callback saw, guarded by `lock`. */
struct seen {
  pthread_mutex_t lock;
  pthread_cond_t done;
  int calls;
  polar_license_outcome outcome;
  polar_license_reason reason;
  polar_license_source source;
  int other_thread;
  pthread_t caller;
};

static void seen_init(struct seen *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->done, NULL);
  s->caller = pthread_self();
}

static void seen_destroy(struct seen *s) {
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->done);
}

static void on_fresh(void *user_data, polar_license_result *result) {
  struct seen *s = user_data;
  pthread_mutex_lock(&s->lock);
  s->calls++;
  s->outcome = polar_license_result_outcome(result);
  s->reason = polar_license_result_reason(result);
  s->source = polar_license_result_source(result);
  s->other_thread = !pthread_equal(pthread_self(), s->caller);
  pthread_cond_broadcast(&s->done);
  pthread_mutex_unlock(&s->lock);
  polar_license_result_free(result);
}

/* Waits up to `seconds` for the callback; returns how many calls it saw. */
static int wait_calls(struct seen *s, int seconds) {
  struct timespec until;
  int calls;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += seconds;
  pthread_mutex_lock(&s->lock);
  while (s->calls == 0) {
    if (pthread_cond_timedwait(&s->done, &s->lock, &until) != 0) break;
  }
  calls = s->calls;
  pthread_mutex_unlock(&s->lock);
  return calls;
}

static double ms_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) * 1e3 + (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void no_cache_then_the_fresh_answer_arrives(void) {
  char dir[64], key[64];
  struct seen s;
  bool pending = false;
  polar_license_result *r = NULL;
  polar_license_client *client;
  temp_dir(dir);
  emu_new_key("", key);
  client = new_client(dir, 0, HOUR, WEEK);
  seen_init(&s);
  must(polar_license_client_check_in_background(client, key, on_fresh, &s, &pending, &r));
  /* Nothing usable yet: not licensed, not a denial; the app starts in a limited mode. */
  CHECK(!polar_license_result_is_licensed(r));
  CHECK_INT(polar_license_result_outcome(r), POLAR_LICENSE_OUTCOME_UNVERIFIED);
  CHECK_INT(polar_license_result_reason(r), POLAR_LICENSE_REASON_NOT_YET_VERIFIED);
  CHECK(pending);
  polar_license_result_free(r);
  CHECK_INT(wait_calls(&s, 10), 1);
  CHECK_INT(s.outcome, POLAR_LICENSE_OUTCOME_LICENSED);
  CHECK_INT(s.source, POLAR_LICENSE_SOURCE_ONLINE);
  CHECK(s.other_thread);

  /* The fresh verdict is cached: the next launch answers at once, with no request. */
  {
    struct seen again;
    long before = emu_request_count();
    seen_init(&again);
    must(polar_license_client_check_in_background(client, key, on_fresh, &again, &pending, &r));
    CHECK(polar_license_result_is_licensed(r));
    CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
    CHECK(!pending);
    polar_license_result_free(r);
    CHECK_INT(wait_calls(&again, 1), 0);
    CHECK_INT(emu_request_count() - before, 0);
    seen_destroy(&again);
  }
  polar_license_client_free(client);
  seen_destroy(&s);
  remove_tree(dir);
}

/* A stale good cache and a hung Polar: the immediate answer is the cache's, at once (timed,
 * well under the 5 s timeout even under valgrind); the callback, after the timeout, licenses
 * from the cache saying why (offline). The client is freed before the callback runs. */
static void polar_hangs_and_the_launch_does_not_wait(void) {
  char dir[64], key[64];
  struct seen s;
  struct timespec start;
  bool pending = false;
  double took;
  polar_license_result *r = NULL;
  polar_license_client *client;
  temp_dir(dir);
  emu_new_key("", key);
  client = new_client(dir, 0, 0, WEEK); /* revalidate_after 0: every check asks Polar */
  r = check(client, key);
  CHECK(polar_license_result_is_licensed(r));
  polar_license_result_free(r);

  emu_fault("{\"kind\":\"hang\"}");
  seen_init(&s);
  clock_gettime(CLOCK_MONOTONIC, &start);
  must(polar_license_client_check_in_background(client, key, on_fresh, &s, &pending, &r));
  took = ms_since(&start);
  polar_license_client_free(client);
  CHECK(polar_license_result_is_licensed(r));
  CHECK_INT(polar_license_result_source(r), POLAR_LICENSE_SOURCE_CACHE);
  CHECK(pending);
  CHECK(took < 2500.0);
  /* The grace ends a week after the verdict. */
  CHECK_INT(polar_license_result_grace_ends_at(r), polar_license_result_verified_at(r) + WEEK);
  printf("  immediate answer in %.1f ms while Polar hangs\n", took);
  polar_license_result_free(r);
  CHECK_INT(wait_calls(&s, 30), 1);
  CHECK_INT(s.outcome, POLAR_LICENSE_OUTCOME_LICENSED);
  CHECK_INT(s.source, POLAR_LICENSE_SOURCE_CACHE);
  CHECK_INT(s.reason, POLAR_LICENSE_REASON_OFFLINE);
  emu_fault(NULL);
  seen_destroy(&s);
  remove_tree(dir);
}

static void bad_arguments_are_refused(void) {
  char dir[64];
  struct seen s;
  polar_license_result *r = NULL;
  polar_license_client *client;
  client = cached_client(dir, HOUR, WEEK);
  seen_init(&s);
  CHECK_INT(polar_license_result_grace_ends_at(NULL), -1);
  CHECK_INT(polar_license_client_check_in_background(client, DEMO_KEY, NULL, &s, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);
  CHECK(strstr(polar_license_client_last_error(client), "on_fresh") != NULL);
  CHECK_INT(polar_license_client_check_in_background(client, NULL, on_fresh, &s, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_check_in_background(NULL, DEMO_KEY, on_fresh, &s, NULL, &r),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_check_in_background(client, DEMO_KEY, on_fresh, &s, NULL, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  /* A bad key is refused before any request: no background check. */
  {
    bool pending = true;
    must(polar_license_client_check_in_background(client, " padded ", on_fresh, &s, &pending, &r));
    CHECK_INT(polar_license_result_reason(r), POLAR_LICENSE_REASON_INVALID_INPUT);
    CHECK(strstr(polar_license_result_user_message(r), "not valid") != NULL);
    CHECK(!pending);
    polar_license_result_free(r);
  }
  CHECK_INT(wait_calls(&s, 1), 0);
  polar_license_client_free(client);
  seen_destroy(&s);
  remove_tree(dir);
}

int main(void) {
  RUN(no_cache_then_the_fresh_answer_arrives);
  RUN(polar_hangs_and_the_launch_does_not_wait);
  RUN(bad_arguments_are_refused);
  return harness_summary("test_background");
}
