/*
 * launch.c: what an app does at launch with the polar-license C API (the C README's quick
 * start). Reads the key from LICENSE_KEY, the organization from POLAR_ORGANIZATION_ID and,
 * for a local Polar such as `polar-license emulator`, its URL from POLAR_API_URL; activates
 * this machine when the cache remembers no activation for the key, then checks. Prints one
 * line per answer, e.g.
 *
 *   activate: done, activation 9f941400-426c-4085-a4b5-283fc8ec5e6e
 *   check: licensed (from the cache)
 *
 * and, on a later launch after the cache's answer is due to be renewed while Polar cannot be
 * reached (within the grace period),
 *
 *   check: licensed (from the cache): offline: io: Connection refused (os error 111)
 *
 * Exits 0 when licensed, 1 when not, 2 when it cannot start. scripts/test-c.sh runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polar_license.h"

/* "CALL: OUTCOME (SOURCE): REASON: DETAIL", leaving out what the answer does not have. */
static void print_answer(const char *call, const polar_license_result *result) {
  const char *reason = polar_license_reason_code(polar_license_result_reason(result));
  const char *detail = polar_license_result_detail(result);

  printf("%s: %s", call, polar_license_outcome_name(polar_license_result_outcome(result)));
  if (strcmp(call, "activate") == 0 && polar_license_result_activation_id(result)[0] != '\0')
    printf(", activation %s", polar_license_result_activation_id(result));
  if (polar_license_result_source(result) == POLAR_LICENSE_SOURCE_ONLINE) printf(" (online)");
  if (polar_license_result_source(result) == POLAR_LICENSE_SOURCE_CACHE) printf(" (from the cache)");
  if (reason[0] != '\0') printf(": %s", reason);
  if (detail[0] != '\0') printf(": %s", detail);
  printf("\n");
}

int main(void) {
  const char *org = getenv("POLAR_ORGANIZATION_ID"), *url = getenv("POLAR_API_URL");
  const char *key = getenv("LICENSE_KEY");
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  polar_license_request *request = NULL;
  polar_license_result *result = NULL;
  int licensed = 0, activated = 0;

  if (org == NULL || key == NULL) {
    fprintf(stderr, "set POLAR_ORGANIZATION_ID and LICENSE_KEY (and POLAR_API_URL for a local Polar)\n");
    return 2;
  }
  if (polar_license_config_new(&config) != POLAR_LICENSE_STATUS_OK) return 2;
  if (polar_license_config_set_organization(config, org) != POLAR_LICENSE_STATUS_OK ||
      (url != NULL && polar_license_config_set_base_url(config, url) != POLAR_LICENSE_STATUS_OK) ||
      polar_license_config_set_require_activation(config, true) != POLAR_LICENSE_STATUS_OK ||
      polar_license_client_new(config, &client) != POLAR_LICENSE_STATUS_OK) {
    fprintf(stderr, "setup: %s\n", polar_license_config_last_error(config));
    polar_license_config_free(config);
    return 2;
  }
  polar_license_config_free(config);

  /* Once per machine: activate when the cache remembers no activation for this key. */
  if (polar_license_client_status(client, key, &result) == POLAR_LICENSE_STATUS_OK)
    activated = polar_license_result_activation_id(result)[0] != '\0';
  polar_license_result_free(result);
  result = NULL;
  if (!activated && polar_license_request_new(key, &request) == POLAR_LICENSE_STATUS_OK &&
      polar_license_request_set_label(request, "my laptop") == POLAR_LICENSE_STATUS_OK &&
      polar_license_client_activate(client, request, &result) == POLAR_LICENSE_STATUS_OK)
    print_answer("activate", result);
  polar_license_result_free(result);
  polar_license_request_free(request);

  /* At every start: the grace-aware verdict. */
  if (polar_license_client_check(client, key, &result) == POLAR_LICENSE_STATUS_OK) {
    licensed = polar_license_result_is_licensed(result);
    print_answer("check", result);
  }
  polar_license_result_free(result);
  polar_license_client_free(client);
  return licensed ? 0 : 1;
}
