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
  }
  std::printf("cpp-smoke: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
