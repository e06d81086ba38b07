/*
 * test_remember.c: the remembered key through the C API (issue #15, item 5): off by default,
 * polar_license_config_set_remember_keys remembers the key of a good activation, a later
 * client (a new launch) checks it with polar_license_client_check_remembered and no key, the
 * key is in no file in plain text, a good deactivation forgets it, another app secret opens
 * nothing, and bad input or NULL pointers are refused before anything is written; a key
 * another process remembers while a deactivate waits on Polar is not forgotten by it.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#include "harness.h"

#define HOUR 3600
#define WEEK (7 * 24 * HOUR)

static polar_license_client *client_with(const char *dir, int remember, const char *app_secret) {
  polar_license_config *config = demo_config(emu_url(), dir);
  must(polar_license_config_set_timeout_ms(config, 5000));
  must(polar_license_config_set_remember_keys(config, remember));
  if (app_secret != NULL) {
    must(polar_license_config_set_app_secret(config, (const uint8_t *)app_secret,
                                             strlen(app_secret)));
  }
  return client_of(config);
}

static int remembered(polar_license_client *client) {
  bool has = true;
  must(polar_license_client_has_remembered_key(client, &has));
  return has ? 1 : 0;
}

/* Whether any file in `dir` holds `needle` (read whole, up to 64 KB each). */
static int dir_holds(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  struct dirent *entry;
  int found = 0;
  CHECK(d != NULL);
  while (d != NULL && !found && (entry = readdir(d)) != NULL) {
    char path[512], text[65536];
    size_t n;
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
    f = fopen(path, "rb");
    if (f == NULL) continue; /* ".", "..", lock files held open elsewhere */
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* Records are text; a binary file (the install secret) may hold NULs: search past them. */
    for (size_t at = 0; at < n && !found; at += strlen(text + at) + 1) {
      found = strstr(text + at, needle) != NULL;
    }
  }
  if (d != NULL) closedir(d);
  return found;
}

static void no_key_remembered(polar_license_result *r) {
  CHECK_INVALID(r, "key");
  CHECK(strstr(polar_license_result_detail(r), "no license key is remembered") != NULL);
}

static void activate_remember_and_check_with_no_key(void) {
  char dir[64], key[64], id[64], hidden[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  long before;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":2", key);

  /* Off by default: an activation remembers no key. */
  client = client_with(dir, 0, NULL);
  activate_ok(client, key, id);
  CHECK_INT(remembered(client), 0);
  before = emu_request_count();
  must(polar_license_client_check_remembered(client, &r));
  no_key_remembered(r);
  polar_license_result_free(r);
  CHECK_INT(emu_request_count(), before);
  polar_license_client_free(client);

  client = client_with(dir, 1, NULL);
  r = activate_labeled(client, key, "laptop");
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  snprintf(id, sizeof id, "%s", polar_license_result_activation_id(r));
  polar_license_result_free(r);
  polar_license_client_free(client);

  /* A new launch: the key comes from the cache directory, the verdict from the activation. */
  client = client_with(dir, 1, NULL);
  CHECK_INT(remembered(client), 1);
  before = emu_request_count();
  must(polar_license_client_check_remembered(client, &r));
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  CHECK_INT(emu_request_count(), before);

  /* The key is in no file (its last 6 characters are Polar's display form, kept in records). */
  snprintf(hidden, sizeof hidden, "%.*s", (int)strlen(key) - 6, key);
  CHECK(dir_holds(dir, "polar-license-key v1")); /* the scan sees the key file */
  CHECK(!dir_holds(dir, hidden));

  /* Another app secret is another app: nothing to open. */
  {
    polar_license_client *other = client_with(dir, 1, "another app");
    CHECK_INT(remembered(other), 0);
    must(polar_license_client_check_remembered(other, &r));
    no_key_remembered(r);
    polar_license_result_free(r);
    polar_license_client_free(other);
  }

  /* A good deactivation forgets it. */
  must(polar_license_client_deactivate(client, key, NULL, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  CHECK_INT(remembered(client), 0);
  client_done(client, dir);
}

static void remember_and_forget_by_hand(void) {
  char dir[64], key[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  temp_dir(dir);
  emu_new_key("", key);
  client = client_with(dir, 0, NULL);

  must(polar_license_client_remember_key(client, key, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  CHECK_INT(remembered(client), 1);
  must(polar_license_client_check_remembered(client, &r));
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_ONLINE);
  polar_license_result_free(r);

  /* Bad keys are refused and the remembered one stays. */
  must(polar_license_client_remember_key(client, "", &r));
  CHECK_INVALID(r, "key");
  polar_license_result_free(r);
  must(polar_license_client_remember_key(client, " padded ", &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);
  polar_license_result_free(r);
  CHECK_INT(remembered(client), 1);

  /* NULL and bad UTF-8 are statuses, nothing written. */
  r = NULL;
  CHECK_INT(polar_license_client_remember_key(client, NULL, &r), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(r == NULL);
  CHECK_INT(polar_license_client_remember_key(client, "\xff\xfe", &r),
            POLAR_LICENSE_STATUS_INVALID_UTF8);
  CHECK_INT(polar_license_client_remember_key(client, key, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_has_remembered_key(client, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK(strstr(polar_license_client_last_error(client), "out_remembered") != NULL);
  CHECK_INT(polar_license_client_check_remembered(client, NULL),
            POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_forget_key(client, NULL), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_client_check_remembered(NULL, &r), POLAR_LICENSE_STATUS_NULL_ARGUMENT);
  CHECK_INT(polar_license_config_set_remember_keys(NULL, 1), POLAR_LICENSE_STATUS_NULL_ARGUMENT);

  must(polar_license_client_forget_key(client, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  CHECK_INT(remembered(client), 0);
  /* Forgetting twice is fine. */
  must(polar_license_client_forget_key(client, &r));
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  polar_license_result_free(r);
  client_done(client, dir);
}

#ifndef _WIN32
/* The race below forks its second process: POSIX only (the Windows run builds it out, as
 * test_signed.c's races).
 *
 * Deactivate's forget race: a process deactivates the remembered key while Polar answers it
 * 3 s late; meanwhile this process activates another key, which remembers it. When the
 * deactivation's answer arrives, the other key stays remembered (the forget compares, under
 * the remembered key's lock, with the entry as it is when it writes). */
static void a_key_remembered_while_a_deactivate_waits_stays_remembered(void) {
  char dir[64], first[64], second[64], id[64];
  polar_license_client *client;
  polar_license_result *r = NULL;
  long before;
  pid_t pid;
  int exit_status = -1;
  struct timespec pause = {0, 5 * 1000 * 1000};
  int waited = 0;
  temp_dir(dir);
  emu_new_key("\"limit_activations\":2", first);
  emu_new_key("\"limit_activations\":2", second);
  client = client_with(dir, 1, NULL);
  activate_ok(client, first, id);
  CHECK_INT(remembered(client), 1);
  polar_license_client_free(client); /* nothing of this process's client in the child */

  before = emu_request_count();
  emu_fault("{\"kind\":\"delay\",\"ms\":3000}");
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* The other process: deactivates the remembered key (its request answered late). */
    polar_license_config *config = demo_config(emu_url(), dir);
    polar_license_client *late;
    must(polar_license_config_set_timeout_ms(config, 20000));
    must(polar_license_config_set_remember_keys(config, 1));
    late = client_of(config);
    must(polar_license_client_deactivate(late, first, NULL, &r));
    CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
    polar_license_result_free(r);
    polar_license_client_free(late);
    harness_child_exit();
  }
  /* Once the deactivate has reached Polar: Polar answers at once again. */
  while (emu_request_count() == before && waited < 4000) {
    nanosleep(&pause, NULL);
    waited++;
  }
  CHECK(emu_request_count() > before);
  emu_fault(NULL);

  /* Meanwhile this process activates the other key and remembers it. */
  client = client_with(dir, 1, NULL);
  activate_ok(client, second, id);
  /* The deactivate still waits on Polar: the race is played. */
  CHECK(waitpid(pid, &exit_status, WNOHANG) == 0);
  CHECK(waitpid(pid, &exit_status, 0) == pid);
  CHECK(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);

  /* The key remembered meanwhile stays: checked with no key, from the cache. */
  CHECK_INT(remembered(client), 1);
  must(polar_license_client_check_remembered(client, &r));
  CHECK_FROM(r, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
             POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  client_done(client, dir);
}
#endif

int main(void) {
  RUN(activate_remember_and_check_with_no_key);
  RUN(remember_and_forget_by_hand);
#ifndef _WIN32
  RUN(a_key_remembered_while_a_deactivate_waits_stays_remembered);
#endif
  return harness_summary("test_remember");
}
