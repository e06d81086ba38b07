// smoke.cpp: the header compiles as C++17 (-Wall -Wextra -Werror -pedantic) and the library
// links and runs from C++. With POLAR_EMULATOR_URL set, it also validates a demo key.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "polar_license.h"

namespace {

// RAII owners for the C handles.
struct ConfigFree {
  void operator()(polar_license_config *c) const { polar_license_config_free(c); }
};
struct ClientFree {
  void operator()(polar_license_client *c) const { polar_license_client_free(c); }
};
struct RequestFree {
  void operator()(polar_license_request *r) const { polar_license_request_free(r); }
};
struct ResultFree {
  void operator()(polar_license_result *r) const { polar_license_result_free(r); }
};
struct AccessFree {
  void operator()(polar_license_feature_access *a) const { polar_license_feature_access_free(a); }
};

int failures = 0;

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "smoke.cpp: check failed: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  check(std::string(polar_license_version()) == POLAR_LICENSE_VERSION, "version");
  check(std::string(polar_license_reason_code(POLAR_LICENSE_REASON_GRACE_EXPIRED)) ==
            "grace_expired",
        "reason code");
  static_assert(sizeof(polar_license_reason) == sizeof(std::uint32_t), "reason is 32 bits");
  static_assert(POLAR_LICENSE_STATUS_OK == 0, "OK is 0");
  static_assert(POLAR_LICENSE_FEATURE_WHY_GRANTED == 1, "GRANTED is 1");
  check(std::string(polar_license_feature_why_code(POLAR_LICENSE_FEATURE_WHY_UNKNOWN_FEATURE)) ==
            "unknown_feature",
        "feature why code");

  polar_license_config *raw_config = nullptr;
  check(polar_license_config_new(&raw_config) == POLAR_LICENSE_STATUS_OK, "config_new");
  std::unique_ptr<polar_license_config, ConfigFree> config(raw_config);
  check(polar_license_config_set_organization(config.get(),
                                              "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10") ==
            POLAR_LICENSE_STATUS_OK,
        "organization");
  const char *url = std::getenv("POLAR_EMULATOR_URL");
  if (url != nullptr) {
    check(polar_license_config_set_base_url(config.get(), url) == POLAR_LICENSE_STATUS_OK,
          "base url");
  }
  check(polar_license_config_set_cache_dir(config.get(), "/tmp/polar-license-smoke-cpp") ==
            POLAR_LICENSE_STATUS_OK,
        "cache dir");
  // The demo keys' benefit grants `pro_export`.
  check(polar_license_config_add_feature(config.get(), "pro_export",
                                         "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d") ==
            POLAR_LICENSE_STATUS_OK,
        "add feature");
  polar_license_client *raw_client = nullptr;
  check(polar_license_client_new(config.get(), &raw_client) == POLAR_LICENSE_STATUS_OK,
        "client_new");
  std::unique_ptr<polar_license_client, ClientFree> client(raw_client);

  if (url != nullptr) {
    polar_license_request *raw_request = nullptr;
    check(polar_license_request_new("DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A", &raw_request) ==
              POLAR_LICENSE_STATUS_OK,
          "request_new");
    std::unique_ptr<polar_license_request, RequestFree> request(raw_request);
    polar_license_result *raw_result = nullptr;
    check(polar_license_client_validate(client.get(), request.get(), &raw_result) ==
              POLAR_LICENSE_STATUS_OK,
          "validate");
    std::unique_ptr<polar_license_result, ResultFree> result(raw_result);
    check(polar_license_result_is_licensed(result.get()), "licensed");
    check(polar_license_result_outcome(result.get()) == POLAR_LICENSE_OUTCOME_LICENSED,
          "outcome");
    polar_license_feature_access *raw_access = nullptr;
    check(polar_license_client_has_feature(client.get(), result.get(), "pro_export",
                                           &raw_access) == POLAR_LICENSE_STATUS_OK,
          "has_feature");
    std::unique_ptr<polar_license_feature_access, AccessFree> access(raw_access);
    check(polar_license_feature_access_granted(access.get()), "pro_export granted");
  }
  std::printf("cpp-smoke: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
