/*
 * harness.h: a tiny test harness for the polar-license C tests, and helpers that drive the
 * emulator's admin routes over a plain socket (no HTTP library needed).
 *
 * Environment:
 *   POLAR_EMULATOR_URL  http://127.0.0.1:PORT of a running `polar-license emulator`
 *   POLAR_LICENSE_CLI   path to the polar-license binary (interop tests only)
 */
#ifndef POLAR_LICENSE_TEST_HARNESS_H
#define POLAR_LICENSE_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "polar_license.h"

/* The demo organization of the emulator's seed. */
#define DEMO_ORG "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"
/* The demo key of the emulator's seed (3 activation slots). */
#define DEMO_KEY "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A"
/* The demo benefit and customer of every demo key. */
#define DEMO_BENEFIT "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d"
#define DEMO_CUSTOMER "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
/* Another UUID v4 (neither the demo benefit nor the demo customer). */
#define OTHER_UUID "0b6f7c1e-2d3a-4f5b-9c8d-7e6f5a4b3c2d"

/* Records a failed check (file, line, text) in the running test. */
void harness_fail(const char *file, int line, const char *what);
void harness_fail_int(const char *file, int line, const char *what, long long got, long long want);
void harness_fail_str(const char *file, int line, const char *what, const char *got,
                      const char *want);

/* Counts a check made (passed or failed): the summary prints how many ran. */
void harness_count(void);

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    harness_count();                                                                              \
    if (!(cond)) harness_fail(__FILE__, __LINE__, #cond);                                         \
  } while (0)

#define CHECK_INT(got, want)                                                                      \
  do {                                                                                            \
    long long got_ = (long long)(got), want_ = (long long)(want);                                 \
    harness_count();                                                                              \
    if (got_ != want_) harness_fail_int(__FILE__, __LINE__, #got, got_, want_);                   \
  } while (0)

#define CHECK_STR(got, want)                                                                      \
  do {                                                                                            \
    const char *got_ = (got), *want_ = (want);                                                    \
    harness_count();                                                                              \
    if (got_ == NULL || strcmp(got_, want_) != 0)                                                 \
      harness_fail_str(__FILE__, __LINE__, #got, got_, want_);                                    \
  } while (0)

/* Checks a result's outcome and reason in one go (and prints its detail on failure). */
#define CHECK_ANSWER(result, outcome, reason)                                                     \
  harness_check_answer(__FILE__, __LINE__, (result), (outcome), (reason))
void harness_check_answer(const char *file, int line, const polar_license_result *result,
                          polar_license_outcome outcome, polar_license_reason reason);

/* CHECK_ANSWER, and the result's source too (two checks). */
#define CHECK_FROM(result, outcome, reason, source)                                               \
  harness_check_from(__FILE__, __LINE__, (result), (outcome), (reason), (source))
void harness_check_from(const char *file, int line, const polar_license_result *result,
                        polar_license_outcome outcome, polar_license_reason reason,
                        polar_license_source source);

/* An invalid_input error naming `field` (CHECK_ANSWER and the field: two checks). */
#define CHECK_INVALID(result, field)                                                              \
  do {                                                                                            \
    const polar_license_result *invalid_ = (result);                                              \
    CHECK_ANSWER(invalid_, POLAR_LICENSE_OUTCOME_ERROR, POLAR_LICENSE_REASON_INVALID_INPUT);      \
    CHECK_STR(polar_license_result_field(invalid_), field);                                       \
  } while (0)

/* The error of a seat or usage result (`face`: seat, usage), and on a mismatch what the result
 * said (its message and code). */
#define CHECK_FACE_ERROR(face, r, want)                                                           \
  do {                                                                                            \
    CHECK_INT(polar_license_##face##_result_error(r), want);                                      \
    if (polar_license_##face##_result_error(r) != (want))                                         \
      fprintf(stderr, "  the result said: %s (%s)\n", polar_license_##face##_result_message(r),   \
              polar_license_##face##_result_code(r));                                             \
  } while (0)

/* check() of `key`, then CHECK_ANSWER (EXPECT_CHECK) or CHECK_FROM (EXPECT_CHECK_FROM) of the
 * result, which is freed. */
/* check(client, key), CHECK_ANSWER (CHECKED) or CHECK_FROM (CHECKED_FROM) on its answer, and
 * the answer for more checks (free it). */
#define CHECKED(client, key, outcome, reason)                                                     \
  harness_checked(__FILE__, __LINE__, (client), (key), (outcome), (reason), 0, 0)
#define CHECKED_FROM(client, key, outcome, reason, source)                                        \
  harness_checked(__FILE__, __LINE__, (client), (key), (outcome), (reason), 1, (source))
polar_license_result *harness_checked(const char *file, int line, polar_license_client *client,
                                      const char *key, polar_license_outcome outcome,
                                      polar_license_reason reason, int with_source,
                                      polar_license_source source);

#define EXPECT_CHECK(client, key, outcome, reason)                                                \
  harness_expect_check(__FILE__, __LINE__, (client), (key), (outcome), (reason), 0, 0)
#define EXPECT_CHECK_FROM(client, key, outcome, reason, source)                                   \
  harness_expect_check(__FILE__, __LINE__, (client), (key), (outcome), (reason), 1, (source))
void harness_expect_check(const char *file, int line, polar_license_client *client,
                          const char *key, polar_license_outcome outcome,
                          polar_license_reason reason, int with_source,
                          polar_license_source source);

/* Runs one test function and prints `ok - name` or `not ok - name`. */
#define RUN(fn) harness_run(#fn, fn)
void harness_run(const char *name, void (*fn)(void));

/* How many checks have failed so far in the running test (0: it passes so far). */
int harness_current_failures(void);

/* Ends a forked child process of a test: flushes stdout and stderr and exits 0 when the child's
 * checks have all passed, 1 otherwise (the parent reads it with waitpid). */
void harness_child_exit(void);

/* Prints `PROGRAM: N checks` (every check made, passed or failed), then
 * `PROGRAM: N passed, N failed` (tests), and returns the exit status (0 when all passed). */
int harness_summary(const char *program);

/* ---- The emulator ------------------------------------------------------------------------ */

/* The emulator's base URL (from POLAR_EMULATOR_URL; the program stops when it is unset). */
const char *emu_url(void);

/* Sends METHOD PATH with BODY (may be NULL) to the emulator; returns the HTTP status (or -1)
 * and copies the response body into `out` (may be NULL). */
int emu_request(const char *method, const char *path, const char *body, char *out,
                size_t out_len);

/* emu_request to another emulator, on 127.0.0.1:port (a private one). */
int emu_request_at(int port, const char *method, const char *path, const char *body, char *out,
                   size_t out_len);

/* Sets a fault (`{"kind":...}` JSON), or clears it with NULL. */
void emu_fault(const char *fault_json);

/* Changes a key (PATCH /__emulator/keys/KEY with a KeyUpdate JSON). */
void emu_patch_key(const char *key, const char *update_json);

/* Starts a private `polar-license emulator` (POLAR_LICENSE_CLI) on 127.0.0.1:port with the demo
 * seed and waits until it accepts connections; returns its pid. For tests that need Polar down
 * on the very address a cache was made against (a record is bound to its server's origin). */
int emu_start_private(int port);

/* Stops a private emulator (SIGTERM, then waits for it). */
void emu_stop_private(int pid);

/* How many license requests the emulator has received. */
long emu_request_count(void);

/* Adds a fresh key to the emulator with these extra seed fields (a JSON fragment such as
 * `"limit_activations":1`, or ""), and writes its unique name into `key` (64 bytes). */
void emu_new_key(const char *fields, char key[64]);

/* The same on the benefit (tier) `benefit_id` (a UUID v4) instead of the demo benefit. */
void emu_new_key_on(const char *benefit_id, const char *fields, char key[64]);

/* A loopback port nothing listens on (bound, read, closed). */
int closed_port(void);

/* ---- Processes and files (the same calls on POSIX and on Windows) -------------------------- */

/* Sleeps `ms` milliseconds. */
void pause_ms(int ms);

/* Starts the program argv[0] (a path) with the arguments argv[1..] (NULL-terminated), its stdout
 * written to the file `out_path` (NULL: thrown away), its stderr thrown away, and, when
 * `env_name` is not NULL, the environment variable env_name=env_value added to what it inherits
 * (a token stays out of the process list). POSIX: fork and execv; Windows: CreateProcess, tried
 * again when wine fails to start it. Returns a handle for proc_wait or proc_end, -1 when it
 * could not be started. */
intptr_t proc_start(const char *const argv[], const char *out_path, const char *env_name,
                    const char *env_value);

/* Waits for a started process to end; returns its exit code (-1: no such process, or killed). */
int proc_wait(intptr_t proc);

/* Ends a started process and waits for it: SIGKILL when `hard`, else SIGTERM (Windows
 * terminates it either way). */
void proc_end(intptr_t proc, int hard);

/* proc_start with no output and no variable, then proc_wait: the exit code. */
int proc_run(const char *const argv[]);

/* Waits (at most 10 s) until the process writing `log_path` (its stdout: a `polar-license
 * emulator` or `relay serve`) printed `listening on URL` as its first line; copies URL into
 * `url`. Returns whether it did. */
int listening_on(const char *log_path, char *url, size_t url_len);

/* Whether the file `path` holds the bytes of `text`. */
int file_holds(const char *path, const char *text);

/* Whether any file in the tree under `dir` holds `text` (grep -rqF). */
int tree_holds(const char *dir, const char *text);

/* ---- Clients ----------------------------------------------------------------------------- */

/* Makes a temporary directory and writes its path into `dir` (64 bytes). */
void temp_dir(char dir[64]);
/* Removes a directory tree. */
void remove_tree(const char *dir);

/* A client for the emulator's demo organization with its cache in `cache_dir` (NULL: the
 * platform default), machine binding on, the given clock offset and grace policy (a
 * revalidate_after of 0 makes every check ask the server). Stops the program on failure. */
polar_license_client *new_client(const char *cache_dir, int64_t clock_offset,
                                 uint64_t revalidate_after, uint64_t grace_period);

/* A config for the demo organization at `base_url`, with its cache in `cache_dir` (NULL: the
 * platform default). Stops the program on failure. */
polar_license_config *demo_config(const char *base_url, const char *cache_dir);

/* The client `config` builds; frees `config`. Stops the program on failure. */
polar_license_client *client_of(polar_license_config *config);

/* What most tests start with: a fresh temporary directory (written into `dir`, 64 bytes) and a
 * new_client with its cache there (clock offset 0). End with client_done. */
polar_license_client *cached_client(char dir[64], uint64_t revalidate_after,
                                    uint64_t grace_period);

/* Frees `client` and removes the directory `dir` (its cache). */
void client_done(polar_license_client *client, const char *dir);

/* polar_license_client_check and polar_license_client_status of `key`, each stopping the program
 * unless the call returns POLAR_LICENSE_STATUS_OK; the result is the caller's to free. */
polar_license_result *check(polar_license_client *client, const char *key);
polar_license_result *status(polar_license_client *client, const char *key);

/* A new config, every setting at its default (stops the program on failure). */
polar_license_config *new_config(void);

/* One request for `key` (stops the program on failure). */
polar_license_request *new_request(const char *key);

/* polar_license_client_validate of `key` with the activation `activation_id` (stopping the
 * program unless the call returns POLAR_LICENSE_STATUS_OK); the result is the caller's to free. */
polar_license_result *validate_activation(polar_license_client *client, const char *key,
                                          const char *activation_id);

/* Stops the program unless a call returned POLAR_LICENSE_STATUS_OK. */
void must(polar_license_status status);

/* polar_license_client_activate of `key` with the activation label `label` (stopping the
 * program unless the calls return POLAR_LICENSE_STATUS_OK); the result is the caller's to free. */
polar_license_result *activate_labeled(polar_license_client *client, const char *key,
                                       const char *label);

/* Activates `key` with a label and returns the activation id (copied into `id`, 64 bytes). */
void activate_ok(polar_license_client *client, const char *key, char id[64]);

/* A fresh key with these seed fields (emu_new_key) activated through `client` (activate_ok). */
void activated_key(polar_license_client *client, const char *fields, char key[64], char id[64]);

#endif
