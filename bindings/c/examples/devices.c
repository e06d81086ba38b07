/*
 * devices.c: out of activations, in the app (issue #80): the key is active on as many
 * machines as it allows, so the app signs the customer in with the code Polar emails, lists
 * the key's devices with this machine marked, frees the oldest other one and activates here.
 *
 *   devices KEY EMAIL      (the code is read from the standard input, as a dialog would ask)
 *
 * Reads the organization from POLAR_ORGANIZATION_ID and, for a local Polar such as
 * `polar-license emulator`, its URL from POLAR_API_URL (the emulator mails nothing: it serves
 * the code at /__emulator/customer-session/codes). The device list needs the benefit's
 * "customers can manage activations" setting in Polar; freeing a device by its id does not.
 * Prints, e.g.
 *
 *   activate: This license key is already active on as many devices as it allows: ...
 *   code sent to jane.doe@gmail.com: type it here
 *   devices: 3 of 3 in use
 *     old laptop 1  activated 2026-11-29
 *     ...
 *   freed: old laptop 1
 *   activate: done
 *   devices: 3 of 3 in use
 *     ...
 *     This computer  activated 2026-11-29  (this machine)
 *
 * Exits 0 when this machine ends activated, 1 when not, 2 when it cannot start.
 * scripts/test-c.sh runs it against an emulator of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polar_license.h"

/* Activates `key` here; 1 when done, 0 when not (the reason said in the customer's words). */
static int activate_here(polar_license_client *client, const char *key) {
  polar_license_request *request = NULL;
  polar_license_result *result = NULL;
  int done = 0;

  if (polar_license_request_new(key, &request) == POLAR_LICENSE_STATUS_OK &&
      polar_license_request_set_label(request, "This computer") == POLAR_LICENSE_STATUS_OK &&
      polar_license_client_activate(client, request, &result) == POLAR_LICENSE_STATUS_OK) {
    done = polar_license_result_outcome(result) == POLAR_LICENSE_OUTCOME_DONE;
    if (done)
      printf("activate: done\n");
    else
      printf("activate: %s\n", polar_license_result_user_message(result));
  }
  polar_license_result_free(result);
  polar_license_request_free(request);
  return done;
}

/* Prints a portal call's failure in the customer's words; returns 1 when it failed. */
static int portal_failed(const char *what, const polar_license_portal_result *r) {
  if (polar_license_portal_result_error(r) == POLAR_LICENSE_PORTAL_ERROR_NONE) return 0;
  printf("%s: %s\n", what, polar_license_portal_result_message(r));
  return 1;
}

/* The key's devices, oldest first, this machine's marked; NULL when the listing failed. */
static polar_license_portal_result *show_devices(polar_license_client *client, const char *key) {
  polar_license_portal_result *r = NULL;
  size_t i, n;
  int64_t limit = 0;

  if (polar_license_client_list_devices(client, key, &r) != POLAR_LICENSE_STATUS_OK) return NULL;
  if (portal_failed("devices", r)) {
    polar_license_portal_result_free(r);
    return NULL;
  }
  n = polar_license_portal_result_device_count(r);
  polar_license_portal_result_limit_activations(r, &limit);
  printf("devices: %zu of %" PRId64 " in use\n", n, limit);
  for (i = 0; i < n; i++) {
    time_t at = (time_t)polar_license_portal_result_device_activated_at(r, i);
    char day[16] = "";
    struct tm *utc = gmtime(&at);
    if (utc != NULL) strftime(day, sizeof day, "%Y-%m-%d", utc);
    printf("  %s  activated %s%s\n", polar_license_portal_result_device_label(r, i), day,
           polar_license_portal_result_device_this_machine(r, i) ? "  (this machine)" : "");
  }
  return r;
}

int main(int argc, char **argv) {
  const char *org = getenv("POLAR_ORGANIZATION_ID"), *url = getenv("POLAR_API_URL");
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  polar_license_portal_result *r = NULL;
  char code[32];
  size_t i, n;
  int here = 0;

  if (argc != 3 || org == NULL) {
    fprintf(stderr, "usage: POLAR_ORGANIZATION_ID=UUID [POLAR_API_URL=URL] %s KEY EMAIL\n", argv[0]);
    return 2;
  }
  if (polar_license_config_new(&config) != POLAR_LICENSE_STATUS_OK) return 2;
  if (polar_license_config_set_organization(config, org) != POLAR_LICENSE_STATUS_OK ||
      (url != NULL && polar_license_config_set_base_url(config, url) != POLAR_LICENSE_STATUS_OK) ||
      polar_license_client_new(config, &client) != POLAR_LICENSE_STATUS_OK) {
    fprintf(stderr, "setup: %s\n", polar_license_config_last_error(config));
    polar_license_config_free(config);
    return 2;
  }
  polar_license_config_free(config);

  /* At the activation limit the app offers to free a device instead of sending the customer
   * to support. */
  if (activate_here(client, argv[1])) {
    here = 1; /* a seat was free: nothing to choose */
    goto done;
  }

  /* 1. Sign in: Polar mails a 6-character code (valid 30 minutes) to the buyer's email. */
  if (polar_license_client_request_sign_in_code(client, argv[2], NULL, &r) != POLAR_LICENSE_STATUS_OK ||
      portal_failed("sign-in", r))
    goto done;
  polar_license_portal_result_free(r);
  r = NULL;
  printf("code sent to %s: type it here\n", argv[2]);
  fflush(stdout);
  if (fgets(code, sizeof code, stdin) == NULL) goto done;
  code[strcspn(code, "\r\n")] = '\0';
  if (polar_license_client_sign_in(client, code, &r) != POLAR_LICENSE_STATUS_OK ||
      portal_failed("sign-in", r))
    goto done;
  polar_license_portal_result_free(r);

  /* 2. The key's devices; the customer picks one to free (here: the oldest that is not this
   * machine). Freeing is Polar's public deactivate: the key and the id, no session. */
  r = show_devices(client, argv[1]);
  if (r == NULL) goto done;
  n = polar_license_portal_result_device_count(r);
  for (i = 0; i < n; i++) {
    polar_license_result *freed = NULL;
    if (polar_license_portal_result_device_this_machine(r, i)) continue;
    if (polar_license_client_free_device(client, argv[1], polar_license_portal_result_device_id(r, i),
                                         &freed) == POLAR_LICENSE_STATUS_OK) {
      if (polar_license_result_outcome(freed) == POLAR_LICENSE_OUTCOME_DONE)
        printf("freed: %s\n", polar_license_portal_result_device_label(r, i));
      else
        printf("free: %s\n", polar_license_result_user_message(freed));
    }
    polar_license_result_free(freed);
    break;
  }
  polar_license_portal_result_free(r);
  r = NULL;

  /* 3. The seat is free: activate here. */
  if (!activate_here(client, argv[1])) goto done;

  /* This machine's row is marked: the customer tells it from the others. */
  r = show_devices(client, argv[1]);
  if (r != NULL) {
    n = polar_license_portal_result_device_count(r);
    for (i = 0; i < n; i++) here |= polar_license_portal_result_device_this_machine(r, i);
  }
done:
  polar_license_portal_result_free(r);
  polar_license_client_free(client);
  return here ? 0 : 1;
}
