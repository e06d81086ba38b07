/*
 * test_labels.c: issue #64 item 6 through the C API. An activation the app gives no label
 * (never set, or "") is labelled with the core's default for this machine, its host name and
 * OS (e.g. "jane-laptop (Linux)"), so a customer reading the key's device list can tell the
 * dead laptop from the desktop; never the key. A label the app sets is kept as given. The
 * label is read back from the emulator's control route (what Polar stored).
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

/* The label Polar stored for `key`'s only activation, into `label`. */
static void stored_label(const char *key, char *label, size_t size) {
  static char body[65536];
  char path[160];
  const char *p;
  size_t n = 0;
  label[0] = '\0';
  snprintf(path, sizeof path, "/__emulator/keys/%s/activations", key);
  if (emu_request("GET", path, NULL, body, sizeof body) != 200) {
    CHECK(!"the activations route answered");
    return;
  }
  p = strstr(body, "\"label\":\"");
  if (p == NULL) {
    CHECK(!"an activation with a label");
    return;
  }
  for (p += strlen("\"label\":\""); *p != '\0' && *p != '"' && n + 1 < size; p++) label[n++] = *p;
  label[n] = '\0';
}

/* The label this machine's activations default to, as the core writes it (Linux: the kernel's
 * host name, then " (Linux)"); "" where this test does not know the host name's source. */
static void expected_label(char *label, size_t size) {
  label[0] = '\0';
#ifdef __linux__
  {
    char host[256] = {0};
    FILE *f = fopen("/proc/sys/kernel/hostname", "r");
    if (f != NULL) {
      if (fgets(host, sizeof host, f) != NULL) host[strcspn(host, "\r\n")] = '\0';
      fclose(f);
    }
    if (host[0] != '\0') snprintf(label, size, "%s (Linux)", host);
  }
#else
  (void)size;
#endif
}

/* Activates a fresh key with `label` (NULL: none set) and returns the label Polar stored. */
static void activate_with(const char *label, char key[64], char *stored, size_t size) {
  char dir[64];
  polar_license_client *client = NULL;
  polar_license_request *request = NULL;
  polar_license_result *result = NULL;
  temp_dir(dir);
  client = new_client(dir, 0, 3600, 7 * 24 * 3600);
  emu_new_key("\"limit_activations\":3", key);
  request = new_request(key);
  if (label != NULL) must(polar_license_request_set_label(request, label));
  must(polar_license_client_activate(client, request, &result));
  CHECK_INT(polar_license_result_outcome(result), POLAR_LICENSE_OUTCOME_DONE);
  polar_license_result_free(result);
  polar_license_request_free(request);
  client_done(client, dir);
  stored_label(key, stored, size);
}

static void no_label_is_the_machines_host_name_and_os(void) {
  char key[64], stored[256], want[320];
  activate_with(NULL, key, stored, sizeof stored);
  CHECK(stored[0] != '\0');
  CHECK(strstr(stored, key) == NULL);
  expected_label(want, sizeof want);
  if (want[0] != '\0') CHECK_STR(stored, want);
}

static void an_empty_label_is_the_default_too(void) {
  char key[64], stored[256], want[320], none[256];
  activate_with("", key, stored, sizeof stored);
  {
    char other[64];
    activate_with(NULL, other, none, sizeof none);
  }
  CHECK(stored[0] != '\0');
  CHECK_STR(stored, none);
  expected_label(want, sizeof want);
  if (want[0] != '\0') CHECK_STR(stored, want);
}

static void a_label_from_the_app_is_kept(void) {
  char key[64], stored[256];
  activate_with("Jane's desk", key, stored, sizeof stored);
  CHECK_STR(stored, "Jane's desk");
}

int main(void) {
  RUN(no_label_is_the_machines_host_name_and_os);
  RUN(an_empty_label_is_the_default_too);
  RUN(a_label_from_the_app_is_kept);
  return harness_summary("test_labels");
}
