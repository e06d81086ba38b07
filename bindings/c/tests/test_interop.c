/*
 * test_interop.c: the C API and the command line share one cache format. A key activated with
 * `polar-license activate` into a directory is seen as activated through the C API, and the
 * reverse (`polar-license status` / `check` see an activation made through C). Without a
 * cache directory each has its own default location.
 * Needs POLAR_LICENSE_CLI (the polar-license binary) besides POLAR_EMULATOR_URL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Runs `polar-license --base-url URL --org ORG [--cache-dir DIR] --json ARGS`, copies its
 * stdout into `out` and returns its exit code (-1 when it could not run). */
static int cli(const char *cache_dir, const char *args, char *out, size_t out_len) {
  const char *path = getenv("POLAR_LICENSE_CLI");
  char command[1024], dir_option[128] = "";
  size_t got = 0, n;
  FILE *pipe;
  int status;
  if (path == NULL) {
    fprintf(stderr, "set POLAR_LICENSE_CLI to the polar-license binary\n");
    return -1;
  }
  if (cache_dir != NULL) snprintf(dir_option, sizeof dir_option, "--cache-dir '%s'", cache_dir);
  snprintf(command, sizeof command, "'%s' --base-url '%s' --org " DEMO_ORG " %s --json %s", path,
           emu_url(), dir_option, args);
  pipe = popen(command, "r");
  if (pipe == NULL) return -1;
  while (got < out_len - 1 && (n = fread(out + got, 1, out_len - 1 - got, pipe)) > 0) got += n;
  out[got] = '\0';
  status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Copies the string value of `"name":"...` from a JSON text into `value` (64 bytes). */
static int json_string(const char *json, const char *name, char value[64]) {
  char pattern[64];
  const char *at, *end;
  snprintf(pattern, sizeof pattern, "\"%s\":\"", name);
  at = strstr(json, pattern);
  if (at == NULL) return 0;
  at += strlen(pattern);
  end = strchr(at, '"');
  if (end == NULL || end - at >= 64) return 0;
  memcpy(value, at, (size_t)(end - at));
  value[end - at] = '\0';
  return 1;
}

static polar_license_client *client_for(const char *dir) {
  return new_client(dir, 0, 3600, 604800);
}

static void cli_activation_is_seen_through_c(const char *dir) {
  static char out[65536];
  char key[64], args[256], id[64] = "";
  polar_license_client *client;
  polar_license_result *r = NULL;
  emu_new_key("\"limit_activations\":2", key);
  snprintf(args, sizeof args, "activate --key %s --label from-cli", key);
  CHECK_INT(cli(dir, args, out, sizeof out), 0);
  CHECK(json_string(out, "activation_id", id));
  CHECK_INT(strlen(id), 36);
  client = client_for(dir);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_PRESENT);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  /* The CLI's activation is a verdict: C's check answers from the cache with it. */
  r = CHECKED_FROM(client, key, POLAR_LICENSE_OUTCOME_LICENSED, POLAR_LICENSE_REASON_NONE,
                   POLAR_LICENSE_SOURCE_CACHE);
  CHECK_STR(polar_license_result_activation_id(r), id);
  polar_license_result_free(r);
  /* And the CLI sees the verdict C stored. */
  snprintf(args, sizeof args, "status --key %s", key);
  CHECK_INT(cli(dir, args, out, sizeof out), 0);
  CHECK(strstr(out, "\"verified_at\":null") == NULL);
  polar_license_client_free(client);
}

static void c_activation_is_seen_by_the_cli(const char *dir) {
  static char out[65536];
  char key[64], id[64], args[256], seen[64] = "";
  polar_license_client *client = client_for(dir);
  activated_key(client, "\"limit_activations\":2", key, id);
  snprintf(args, sizeof args, "status --key %s", key);
  CHECK_INT(cli(dir, args, out, sizeof out), 0);
  CHECK(strstr(out, "\"state\":\"present\"") != NULL);
  CHECK(json_string(out, "activation_id", seen));
  CHECK_STR(seen, id);
  snprintf(args, sizeof args, "check --key %s", key);
  CHECK_INT(cli(dir, args, out, sizeof out), 0);
  CHECK(strstr(out, "\"outcome\":\"licensed\"") != NULL);
  CHECK(json_string(out, "activation_id", seen));
  CHECK_STR(seen, id);
  /* Deactivate through the CLI: C's status no longer remembers it. */
  snprintf(args, sizeof args, "deactivate --key %s", key);
  CHECK_INT(cli(dir, args, out, sizeof out), 0);
  {
    polar_license_result *r = NULL;
    r = status(client, key);
    CHECK_STR(polar_license_result_activation_id(r), "");
    polar_license_result_free(r);
  }
  polar_license_client_free(client);
}

static void same_cache_directory(void) {
  char dir[64];
  temp_dir(dir);
  cli_activation_is_seen_through_c(dir);
  c_activation_is_seen_by_the_cli(dir);
  remove_tree(dir);
}

/* No cache directory set anywhere: each application has its own under the platform's data
 * directory, $XDG_DATA_HOME/polar-license/<application>: the CLI's records are never this
 * program's by accident (issue #12: a record made with the CLI must not license an app). */
static void separate_default_locations(void) {
  static char out[65536];
  char home[64], key[64], args[256], path[192];
  polar_license_client *client;
  polar_license_result *r = NULL;
  struct stat st;
  temp_dir(home);
  setenv("XDG_DATA_HOME", home, 1);
  emu_new_key("\"limit_activations\":2", key);
  snprintf(args, sizeof args, "activate --key %s --label from-cli", key);
  CHECK_INT(cli(NULL, args, out, sizeof out), 0);
  snprintf(path, sizeof path, "%s/polar-license/polar-license", home);
  CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode)); /* where the CLI documents it */
  client = client_for(NULL);
  r = status(client, key);
  CHECK_ANSWER(r, POLAR_LICENSE_OUTCOME_DONE, POLAR_LICENSE_REASON_NONE);
  CHECK_INT(polar_license_result_cache_state(r), POLAR_LICENSE_CACHE_STATE_EMPTY);
  CHECK_STR(polar_license_result_activation_id(r), "");
  polar_license_result_free(r);
  polar_license_client_free(client);
  /* This program's own directory beside the CLI's (named after its executable). */
  snprintf(path, sizeof path, "%s/polar-license", home);
  {
    DIR *dir = opendir(path);
    struct dirent *entry;
    int apps = 0, cli_dir = 0;
    CHECK(dir != NULL);
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
      if (entry->d_name[0] == '.') continue;
      apps++;
      if (strcmp(entry->d_name, "polar-license") == 0) cli_dir = 1;
    }
    if (dir != NULL) closedir(dir);
    CHECK_INT(apps, 2);
    CHECK_INT(cli_dir, 1);
  }
  {
    /* ...named after this executable: <data dir>/polar-license/<executable name>. */
    char exe[512], own[640];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *name;
    CHECK(n > 0);
    exe[n > 0 ? n : 0] = '\0';
    name = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    snprintf(own, sizeof own, "%s/polar-license/%s", home, name);
    CHECK(stat(own, &st) == 0 && S_ISDIR(st.st_mode));
  }
  unsetenv("XDG_DATA_HOME");
  remove_tree(home);
}

int main(void) {
  RUN(same_cache_directory);
  RUN(separate_default_locations);
  return harness_summary("test_interop");
}
