/*
 * validate.c: the quick start of the polar-license C API.
 *
 *   validate KEY
 *
 * Reads the organization from POLAR_ORGANIZATION_ID and, optionally, a base URL from
 * POLAR_API_URL (for example the local emulator: `polar-license emulator`); without it the
 * production server is used. Validates KEY online once, prints the answer and exits with the
 * command line's codes: 0 licensed, 1 denied, 2 invalid input, 3 unverified or error.
 *
 * Build (Linux):
 *   cargo build -p polar-license-c --profile c-release
 *   cc -std=c11 -Ibindings/c/include bindings/c/examples/validate.c \
 *      target/c-release/libpolar_license_c.a -o validate
 * or, installed (bash bindings/c/install.sh --prefix DIR, PKG_CONFIG_PATH=DIR/lib/pkgconfig):
 *   cc validate.c $(pkg-config --cflags --libs polar_license-static) -o validate
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "polar_license.h"

/* Prints why a setup call failed and returns 2. */
static int setup_failed(const char *what, polar_license_status status, const char *message) {
  fprintf(stderr, "%s failed: %s: %s\n", what, polar_license_status_message(status), message);
  return 2;
}

int main(int argc, char **argv) {
  const char *org = getenv("POLAR_ORGANIZATION_ID");
  const char *base_url = getenv("POLAR_API_URL");
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  polar_license_request *request = NULL;
  polar_license_result *result = NULL;
  polar_license_status status;
  int exit_code;

  if (argc != 2 || org == NULL) {
    fprintf(stderr, "usage: POLAR_ORGANIZATION_ID=UUID [POLAR_API_URL=URL] %s KEY\n", argv[0]);
    return 2;
  }
  printf("polar-license %s (header %s)\n", polar_license_version(), POLAR_LICENSE_VERSION);

  /* 1. A config: the organization, and the server (production unless a base URL is given). */
  status = polar_license_config_new(&config);
  if (status != POLAR_LICENSE_STATUS_OK) {
    return setup_failed("config", status, "");
  }
  status = polar_license_config_set_organization(config, org);
  if (status == POLAR_LICENSE_STATUS_OK && base_url != NULL) {
    status = polar_license_config_set_base_url(config, base_url);
  }
  /* 2. A client (thread-safe; make one and keep it). The config can go right after. */
  if (status == POLAR_LICENSE_STATUS_OK) {
    status = polar_license_client_new(config, &client);
  }
  if (status != POLAR_LICENSE_STATUS_OK) {
    exit_code = setup_failed("setup", status, polar_license_config_last_error(config));
    polar_license_config_free(config);
    return exit_code;
  }
  polar_license_config_free(config);

  /* 3. A request for the key, and one online validation. */
  status = polar_license_request_new(argv[1], &request);
  if (status == POLAR_LICENSE_STATUS_OK) {
    status = polar_license_client_validate(client, request, &result);
  }
  if (status != POLAR_LICENSE_STATUS_OK) {
    exit_code = setup_failed("validate", status, polar_license_client_last_error(client));
    polar_license_request_free(request);
    polar_license_client_free(client);
    return exit_code;
  }

  /* 4. The answer: a licensed/denied/unverified/error outcome, a reason and details. */
  if (polar_license_result_is_licensed(result)) {
    int64_t limit = polar_license_result_limit_usage(result);
    printf("licensed: usage %" PRId64, polar_license_result_usage(result));
    if (limit >= 0) {
      printf(" of %" PRId64, limit);
    }
    printf(", %" PRId64 " validations, expires %s\n", polar_license_result_validations(result),
           polar_license_result_expires_at(result) < 0 ? "never" : "at a set time");
    exit_code = 0;
  } else {
    polar_license_reason reason = polar_license_result_reason(result);
    printf("%s: %s: %s\n", polar_license_outcome_name(polar_license_result_outcome(result)),
           polar_license_reason_code(reason), polar_license_result_detail(result));
    switch (polar_license_result_outcome(result)) {
      case POLAR_LICENSE_OUTCOME_DENIED:
        exit_code = 1;
        break;
      default:
        exit_code = reason == POLAR_LICENSE_REASON_INVALID_INPUT ? 2 : 3;
        break;
    }
  }

  /* 5. Free everything: the result (its strings with it), the request, the client. */
  polar_license_result_free(result);
  polar_license_request_free(request);
  polar_license_client_free(client);
  return exit_code;
}
