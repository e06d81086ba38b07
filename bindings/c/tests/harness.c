/* harness.c: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The few things that differ on Windows (scripts/test-windows.sh builds the portable suites
 * with MinGW-w64 and runs them under wine): sockets, processes, temporary directories. */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <direct.h>
#include <io.h>
#include <process.h>
#include <sys/stat.h>
typedef SOCKET sock_t;
#define BAD_SOCK INVALID_SOCKET
#define close_sock closesocket
#define getpid _getpid
static void net_init(void) {
  static int done;
  WSADATA data;
  if (!done && WSAStartup(MAKEWORD(2, 2), &data) == 0) done = 1;
}
void pause_ms(int ms) { Sleep((DWORD)ms); }
#else
#include <arpa/inet.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
typedef int sock_t;
#define BAD_SOCK (-1)
#define close_sock close
static void net_init(void) {}
void pause_ms(int ms) {
  struct timespec step;
  step.tv_sec = ms / 1000;
  step.tv_nsec = (long)(ms % 1000) * 1000 * 1000;
  nanosleep(&step, NULL);
}
#endif

static int passed, failed, current_failures;
static long checks;

void harness_count(void) { checks++; }
static const char *current_test = "";

void harness_fail(const char *file, int line, const char *what) {
  current_failures++;
  fprintf(stderr, "  %s:%d: %s: check failed: %s\n", file, line, current_test, what);
}

void harness_fail_int(const char *file, int line, const char *what, long long got,
                      long long want) {
  current_failures++;
  fprintf(stderr, "  %s:%d: %s: %s is %lld, expected %lld\n", file, line, current_test, what,
          got, want);
}

void harness_fail_str(const char *file, int line, const char *what, const char *got,
                      const char *want) {
  current_failures++;
  fprintf(stderr, "  %s:%d: %s: %s is \"%s\", expected \"%s\"\n", file, line, current_test, what,
          got ? got : "(NULL)", want);
}

void harness_check_answer(const char *file, int line, const polar_license_result *result,
                          polar_license_outcome outcome, polar_license_reason reason) {
  polar_license_outcome got_outcome = polar_license_result_outcome(result);
  polar_license_reason got_reason = polar_license_result_reason(result);
  harness_count();
  if (got_outcome != outcome || got_reason != reason) {
    current_failures++;
    fprintf(stderr, "  %s:%d: %s: answer is %s/%s (%s), expected %s/%s\n", file, line,
            current_test, polar_license_outcome_name(got_outcome),
            polar_license_reason_code(got_reason), polar_license_result_detail(result),
            polar_license_outcome_name(outcome), polar_license_reason_code(reason));
  }
}

void harness_check_from(const char *file, int line, const polar_license_result *result,
                        polar_license_outcome outcome, polar_license_reason reason,
                        polar_license_source source) {
  polar_license_source got = polar_license_result_source(result);
  harness_check_answer(file, line, result, outcome, reason);
  harness_count();
  if (got != source) harness_fail_int(file, line, "polar_license_result_source", got, source);
}

polar_license_result *harness_checked(const char *file, int line, polar_license_client *client,
                                      const char *key, polar_license_outcome outcome,
                                      polar_license_reason reason, int with_source,
                                      polar_license_source source) {
  polar_license_result *r = check(client, key);
  if (with_source) {
    harness_check_from(file, line, r, outcome, reason, source);
  } else {
    harness_check_answer(file, line, r, outcome, reason);
  }
  return r;
}

void harness_expect_check(const char *file, int line, polar_license_client *client,
                          const char *key, polar_license_outcome outcome,
                          polar_license_reason reason, int with_source,
                          polar_license_source source) {
  polar_license_result_free(
      harness_checked(file, line, client, key, outcome, reason, with_source, source));
}

void harness_run(const char *name, void (*fn)(void)) {
  current_test = name;
  current_failures = 0;
  fn();
  emu_fault(NULL); /* a failed test must not leave a fault behind */
  if (current_failures == 0) {
    passed++;
    printf("ok - %s\n", name);
  } else {
    failed++;
    printf("not ok - %s\n", name);
  }
  fflush(stdout);
}

int harness_current_failures(void) { return current_failures; }

void harness_child_exit(void) {
  fflush(stdout);
  fflush(stderr);
  exit(current_failures == 0 ? 0 : 1);
}

int harness_summary(const char *program) {
  printf("%s: %ld checks\n", program, checks);
  printf("%s: %d passed, %d failed\n", program, passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

static void die(const char *what) {
  fprintf(stderr, "fatal: %s\n", what);
  exit(2);
}

const char *emu_url(void) {
  const char *url = getenv("POLAR_EMULATOR_URL");
  if (url == NULL || strncmp(url, "http://127.0.0.1:", 17) != 0) {
    die("set POLAR_EMULATOR_URL=http://127.0.0.1:PORT (a running polar-license emulator)");
  }
  return url;
}

/* 127.0.0.1:port as a socket address (port 0: any free port). */
static void loopback(struct sockaddr_in *addr, int port) {
  net_init();
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr->sin_port = htons((uint16_t)port);
}

int emu_request(const char *method, const char *path, const char *body, char *out,
                size_t out_len) {
  return emu_request_at(atoi(emu_url() + 17), method, path, body, out, out_len);
}

int emu_request_at(int port, const char *method, const char *path, const char *body, char *out,
                   size_t out_len) {
  struct sockaddr_in addr;
  char head[512];
  static char response[65536];
  size_t got = 0, body_len = body ? strlen(body) : 0;
  int n;
  sock_t fd;
  int status = -1;
  char *start;

  loopback(&addr, port);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd == BAD_SOCK) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close_sock(fd);
    return -1;
  }
  snprintf(head, sizeof head,
           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           "Content-Type: application/json\r\nContent-Length: %lu\r\n\r\n",
           method, path, (unsigned long)body_len);
  if (send(fd, head, (int)strlen(head), 0) < 0 ||
      (body_len && send(fd, body, (int)body_len, 0) < 0)) {
    close_sock(fd);
    return -1;
  }
  while (got < sizeof response - 1 &&
         (n = (int)recv(fd, response + got, (int)(sizeof response - 1 - got), 0)) > 0) {
    got += (size_t)n;
  }
  close_sock(fd);
  response[got] = '\0';
  if (sscanf(response, "HTTP/1.1 %d", &status) != 1) return -1;
  if (out != NULL && out_len > 0) {
    start = strstr(response, "\r\n\r\n");
    snprintf(out, out_len, "%s", start ? start + 4 : "");
  }
  return status;
}

void emu_fault(const char *fault_json) {
  if (emu_request("POST", "/__emulator/fault", fault_json ? fault_json : "null", NULL, 0) != 204) {
    die("could not set the emulator's fault");
  }
}

void emu_patch_key(const char *key, const char *update_json) {
  char path[160];
  snprintf(path, sizeof path, "/__emulator/keys/%s", key);
  if (emu_request("PATCH", path, update_json, NULL, 0) != 200) die("could not patch a key");
}

long emu_request_count(void) {
  char body[256];
  long count = -1;
  const char *at;
  if (emu_request("GET", "/__emulator/requests", NULL, body, sizeof body) != 200) {
    die("could not read the emulator's request count");
  }
  at = strstr(body, "\"count\":");
  if (at != NULL) count = atol(at + 8);
  return count;
}

void emu_new_key(const char *fields, char key[64]) { emu_new_key_on(DEMO_BENEFIT, fields, key); }

void emu_new_key_on(const char *benefit_id, const char *fields, char key[64]) {
  static unsigned counter;
  char body[512];
  snprintf(key, 64, "CTEST-%ld-%u-%ld", (long)getpid(), ++counter, (long)rand());
  snprintf(body, sizeof body,
           "{\"key\":\"%s\",\"benefit_id\":\"%s\",\"customer_id\":\"" DEMO_CUSTOMER
           "\"%s%s}",
           key, benefit_id, fields[0] ? "," : "", fields);
  if (emu_request("POST", "/__emulator/keys", body, NULL, 0) != 201) die("could not add a key");
}

int closed_port(void) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  sock_t fd;
  int port;
  loopback(&addr, 0);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  bind(fd, (struct sockaddr *)&addr, sizeof addr);
  getsockname(fd, (struct sockaddr *)&addr, &len);
  port = ntohs(addr.sin_port);
  close_sock(fd);
  return port;
}

/* Whether something listens on 127.0.0.1:port. */
static int listening(int port) {
  struct sockaddr_in addr;
  sock_t fd;
  int up;
  loopback(&addr, port);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  up = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  close_sock(fd);
  return up;
}

#ifdef _WIN32
/* Private emulators by handle; the "pid" handed out is the index + 1. */
static HANDLE privates[16];

int emu_start_private(int port) {
  const char *cli = getenv("POLAR_LICENSE_CLI");
  char command[1024];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  int i, slot = -1;
  if (cli == NULL || cli[0] == '\0') die("set POLAR_LICENSE_CLI to the polar-license binary");
  for (i = 0; i < 16; i++) {
    if (privates[i] == NULL) {
      slot = i;
      break;
    }
  }
  if (slot < 0) die("too many private emulators");
  snprintf(command, sizeof command, "\"%s\" emulator --port %d", cli, port);
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  /* wine now and then fails to start one of many processes ("Internal error", 1359): a
   * process that could not be started is tried again; one that started is never. */
  for (i = 0; !CreateProcessA(NULL, command, NULL, NULL, FALSE, CREATE_NO_WINDOW, NULL, NULL, &si,
                              &pi);
       i++) {
    if (i == 3) die("CreateProcess");
    pause_ms(100 * (i + 1));
  }
  CloseHandle(pi.hThread);
  privates[slot] = pi.hProcess;
  for (i = 0; i < 500; i++) {
    if (listening(port)) return slot + 1;
    pause_ms(20);
  }
  TerminateProcess(pi.hProcess, 1);
  die("the private emulator did not start");
  return -1;
}

void emu_stop_private(int pid) {
  if (pid <= 0 || pid > 16 || privates[pid - 1] == NULL) return;
  TerminateProcess(privates[pid - 1], 0);
  WaitForSingleObject(privates[pid - 1], 10000);
  CloseHandle(privates[pid - 1]);
  privates[pid - 1] = NULL;
}

void temp_dir(char dir[64]) {
  static unsigned counter;
  char base[MAX_PATH];
  DWORD n = GetTempPathA(sizeof base, base);
  if (n == 0 || n >= sizeof base) die("GetTempPath");
  /* wine reuses small process ids: a directory a crashed run left behind is skipped. */
  for (;;) {
    snprintf(dir, 64, "%spolar-license-ctest-%d-%u", base, (int)getpid(), ++counter);
    if (_mkdir(dir) == 0) return;
    if (errno != EEXIST || counter >= 10000) die("mkdir");
  }
}

void remove_tree(const char *dir) {
  char pattern[MAX_PATH], path[MAX_PATH];
  struct _finddata_t entry;
  intptr_t find;
  snprintf(pattern, sizeof pattern, "%s\\*", dir);
  find = _findfirst(pattern, &entry);
  if (find != -1) {
    do {
      if (strcmp(entry.name, ".") == 0 || strcmp(entry.name, "..") == 0) continue;
      snprintf(path, sizeof path, "%s\\%s", dir, entry.name);
      if (entry.attrib & _A_SUBDIR) {
        remove_tree(path);
      } else {
        _chmod(path, _S_IREAD | _S_IWRITE);
        remove(path);
      }
    } while (_findnext(find, &entry) == 0);
    _findclose(find);
  }
  _rmdir(dir);
}

/* One argument of a command line as the C runtime splits it back (CommandLineToArgvW's rules):
 * quoted when it has a space, a tab or a quote, or is empty; a quote and the backslashes before
 * it escaped. */
static int append_arg(char *line, size_t len, const char *arg) {
  size_t n = strlen(line), slashes = 0;
  int quote = arg[0] == '\0' || strpbrk(arg, " \t\"") != NULL;
  const char *c;
#define PUT(ch)                                                                                   \
  do {                                                                                            \
    if (n + 2 >= len) return 0;                                                                   \
    line[n++] = (ch);                                                                             \
  } while (0)
  if (n > 0) PUT(' ');
  if (quote) PUT('"');
  for (c = arg; *c != '\0'; c++) {
    if (*c == '\\') {
      slashes++;
    } else {
      if (*c == '"') {
        for (; slashes > 0; slashes--) PUT('\\');
        PUT('\\');
      }
      slashes = 0;
    }
    PUT(*c);
  }
  if (quote) {
    for (; slashes > 0; slashes--) PUT('\\');
    PUT('"');
  }
#undef PUT
  line[n] = '\0';
  return 1;
}

intptr_t proc_start(const char *const argv[], const char *out_path, const char *env_name,
                    const char *env_value) {
  char line[4096] = "";
  SECURITY_ATTRIBUTES inherit;
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  HANDLE out, null;
  int i, started;
  for (i = 0; argv[i] != NULL; i++) {
    if (!append_arg(line, sizeof line, argv[i])) die("proc_start: command line too long");
  }
  memset(&inherit, 0, sizeof inherit);
  inherit.nLength = sizeof inherit;
  inherit.bInheritHandle = TRUE;
  null = CreateFileA("NUL", GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                     OPEN_EXISTING, 0, NULL);
  out = out_path == NULL ? null
                         : CreateFileA(out_path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                                       &inherit, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  if (null == INVALID_HANDLE_VALUE || out == INVALID_HANDLE_VALUE) die("proc_start: output");
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = null;
  si.hStdOutput = out;
  si.hStdError = null;
  /* The child inherits this process's environment: the variable is set for the start only. */
  if (env_name != NULL && !SetEnvironmentVariableA(env_name, env_value)) die("proc_start: env");
  /* wine now and then fails to start one of many processes ("Internal error", 1359): a
   * process that could not be started is tried again; one that started is never. */
  for (i = 0; !(started = CreateProcessA(NULL, line, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL,
                                         NULL, &si, &pi)) &&
              i < 3;
       i++) {
    pause_ms(100 * (i + 1));
  }
  if (env_name != NULL) SetEnvironmentVariableA(env_name, NULL);
  if (out != null) CloseHandle(out);
  CloseHandle(null);
  if (!started) return -1;
  CloseHandle(pi.hThread);
  return (intptr_t)pi.hProcess;
}

int proc_wait(intptr_t proc) {
  DWORD code = 1;
  if (proc == -1) return -1;
  WaitForSingleObject((HANDLE)proc, INFINITE);
  if (!GetExitCodeProcess((HANDLE)proc, &code)) code = (DWORD)-1;
  CloseHandle((HANDLE)proc);
  return (int)code;
}

void proc_end(intptr_t proc, int hard) {
  (void)hard;
  if (proc == -1) return;
  TerminateProcess((HANDLE)proc, 1);
  proc_wait(proc);
}

int tree_holds(const char *dir, const char *text) {
  char pattern[MAX_PATH], path[MAX_PATH];
  struct _finddata_t entry;
  intptr_t find;
  int found = 0;
  snprintf(pattern, sizeof pattern, "%s\\*", dir);
  find = _findfirst(pattern, &entry);
  if (find == -1) return 0;
  do {
    if (strcmp(entry.name, ".") == 0 || strcmp(entry.name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s\\%s", dir, entry.name);
    found = (entry.attrib & _A_SUBDIR) ? tree_holds(path, text) : file_holds(path, text);
  } while (!found && _findnext(find, &entry) == 0);
  _findclose(find);
  return found;
}
#else
int emu_start_private(int port) {
  const char *cli = getenv("POLAR_LICENSE_CLI");
  char port_text[16];
  pid_t pid;
  int i;
  if (cli == NULL || cli[0] == '\0') die("set POLAR_LICENSE_CLI to the polar-license binary");
  snprintf(port_text, sizeof port_text, "%d", port);
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (freopen("/dev/null", "w", stdout) == NULL) _exit(126);
    execl(cli, cli, "emulator", "--port", port_text, (char *)NULL);
    _exit(127);
  }
  /* A bounded wait for it to listen (at most 10 s), not a timing assertion. */
  for (i = 0; i < 500; i++) {
    if (listening(port)) return (int)pid;
    pause_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  die("the private emulator did not start");
  return -1;
}

void emu_stop_private(int pid) {
  if (pid <= 0) return;
  kill((pid_t)pid, SIGTERM);
  waitpid((pid_t)pid, NULL, 0);
}

void temp_dir(char dir[64]) {
  snprintf(dir, 64, "/tmp/polar-license-ctest-XXXXXX");
  if (mkdtemp(dir) == NULL) die("mkdtemp");
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

intptr_t proc_start(const char *const argv[], const char *out_path, const char *env_name,
                    const char *env_value) {
  pid_t pid;
  /* What this process has buffered is written once, not once more by the child's freopen. */
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (freopen(out_path != NULL ? out_path : "/dev/null", "w", stdout) == NULL) _exit(126);
    if (freopen("/dev/null", "w", stderr) == NULL) _exit(126);
    /* A variable through the environment (a token) stays out of the process list. */
    if (env_name != NULL && setenv(env_name, env_value, 1) != 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return (intptr_t)pid;
}

int proc_wait(intptr_t proc) {
  int status;
  if (proc <= 0 || waitpid((pid_t)proc, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void proc_end(intptr_t proc, int hard) {
  if (proc <= 0) return;
  kill((pid_t)proc, hard ? SIGKILL : SIGTERM);
  waitpid((pid_t)proc, NULL, 0);
}

int tree_holds(const char *dir, const char *text) {
  char path[4096];
  struct dirent *entry;
  struct stat st;
  int found = 0;
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  while (!found && (entry = readdir(d)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
    if (lstat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      found = tree_holds(path, text);
    } else if (S_ISREG(st.st_mode)) {
      found = file_holds(path, text);
    }
  }
  closedir(d);
  return found;
}
#endif

int proc_run(const char *const argv[]) { return proc_wait(proc_start(argv, NULL, NULL, NULL)); }

int listening_on(const char *log_path, char *url, size_t url_len) {
  FILE *log;
  int i;
  url[0] = '\0';
  for (i = 0; i < 500 && url[0] == '\0'; i++) {
    char line[128] = "";
    log = fopen(log_path, "r");
    if (log != NULL) {
      if (fgets(line, sizeof line, log) != NULL && strncmp(line, "listening on ", 13) == 0 &&
          strchr(line, '\n') != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(url, url_len, "%s", line + 13);
      }
      fclose(log);
    }
    if (url[0] == '\0') pause_ms(20);
  }
  return url[0] != '\0';
}

int file_holds(const char *path, const char *text) {
  size_t want = strlen(text), have = 0, i;
  char buf[65536];
  int found = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL || want == 0 || want > sizeof buf / 2) {
    if (f != NULL) fclose(f);
    return 0;
  }
  /* A window of the file with the last want-1 bytes of the one before kept in front, so that a
   * match across two reads is found. */
  for (;;) {
    size_t n = fread(buf + have, 1, sizeof buf - have, f);
    if (n == 0) break;
    have += n;
    for (i = 0; i + want <= have; i++) {
      if (memcmp(buf + i, text, want) == 0) {
        found = 1;
        break;
      }
    }
    if (found) break;
    if (have >= want) {
      memmove(buf, buf + have - (want - 1), want - 1);
      have = want - 1;
    }
  }
  fclose(f);
  return found;
}

polar_license_client *new_client(const char *cache_dir, int64_t clock_offset,
                                 uint64_t revalidate_after, uint64_t grace_period) {
  polar_license_config *config = NULL;
  polar_license_client *client = NULL;
  int ok = polar_license_config_new(&config) == POLAR_LICENSE_STATUS_OK &&
           polar_license_config_set_organization(config, DEMO_ORG) == POLAR_LICENSE_STATUS_OK &&
           polar_license_config_set_base_url(config, emu_url()) == POLAR_LICENSE_STATUS_OK &&
           polar_license_config_set_timeout_ms(config, 5000) == POLAR_LICENSE_STATUS_OK &&
           polar_license_config_set_grace_policy(config, revalidate_after, grace_period,
                                                 revalidate_after < 600 ? revalidate_after : 600) ==
               POLAR_LICENSE_STATUS_OK &&
           polar_license_config_set_clock_offset_for_testing(config, clock_offset) ==
               POLAR_LICENSE_STATUS_OK &&
           (cache_dir == NULL ||
            polar_license_config_set_cache_dir(config, cache_dir) == POLAR_LICENSE_STATUS_OK) &&
           polar_license_client_new(config, &client) == POLAR_LICENSE_STATUS_OK;
  if (!ok) {
    fprintf(stderr, "client setup failed: %s\n", polar_license_config_last_error(config));
    polar_license_config_free(config);
    die("new_client");
  }
  polar_license_config_free(config);
  return client;
}

polar_license_config *new_config(void) {
  polar_license_config *config = NULL;
  must(polar_license_config_new(&config));
  return config;
}

polar_license_request *new_request(const char *key) {
  polar_license_request *request = NULL;
  if (polar_license_request_new(key, &request) != POLAR_LICENSE_STATUS_OK) die("new_request");
  return request;
}

void must(polar_license_status status) {
  if (status != POLAR_LICENSE_STATUS_OK) {
    fprintf(stderr, "call failed: %s\n", polar_license_status_message(status));
    die("a call did not return POLAR_LICENSE_STATUS_OK");
  }
}

/* `call` (validate, activate) with a request for `key` that `set` gave `value` (one field),
 * each call stopping the program unless it returns POLAR_LICENSE_STATUS_OK. */
static polar_license_result *
send_with(polar_license_client *client, const char *key,
          polar_license_status (*set)(polar_license_request *, const char *), const char *value,
          polar_license_status (*call)(const polar_license_client *,
                                       const polar_license_request *, polar_license_result **)) {
  polar_license_request *request = new_request(key);
  polar_license_result *result = NULL;
  must(set(request, value));
  must(call(client, request, &result));
  polar_license_request_free(request);
  return result;
}

polar_license_result *validate_activation(polar_license_client *client, const char *key,
                                          const char *activation_id) {
  return send_with(client, key, polar_license_request_set_activation_id, activation_id,
                   polar_license_client_validate);
}

polar_license_result *activate_labeled(polar_license_client *client, const char *key,
                                       const char *label) {
  return send_with(client, key, polar_license_request_set_label, label,
                   polar_license_client_activate);
}

void activate_ok(polar_license_client *client, const char *key, char id[64]) {
  polar_license_result *result = activate_labeled(client, key, "c-test");
  if (polar_license_result_outcome(result) != POLAR_LICENSE_OUTCOME_DONE) {
    fprintf(stderr, "activate: %s: %s\n",
            polar_license_reason_code(polar_license_result_reason(result)),
            polar_license_result_detail(result));
    die("activate_ok");
  }
  snprintf(id, 64, "%s", polar_license_result_activation_id(result));
  polar_license_result_free(result);
}

void activated_key(polar_license_client *client, const char *fields, char key[64], char id[64]) {
  emu_new_key(fields, key);
  activate_ok(client, key, id);
}

polar_license_client *cached_client(char dir[64], uint64_t revalidate_after,
                                    uint64_t grace_period) {
  temp_dir(dir);
  return new_client(dir, 0, revalidate_after, grace_period);
}

void client_done(polar_license_client *client, const char *dir) {
  polar_license_client_free(client);
  remove_tree(dir);
}

polar_license_result *check(polar_license_client *client, const char *key) {
  polar_license_result *r = NULL;
  must(polar_license_client_check(client, key, &r));
  return r;
}

polar_license_result *status(polar_license_client *client, const char *key) {
  polar_license_result *r = NULL;
  must(polar_license_client_status(client, key, &r));
  return r;
}

polar_license_config *demo_config(const char *base_url, const char *cache_dir) {
  polar_license_config *config = new_config();
  must(polar_license_config_set_organization(config, DEMO_ORG));
  must(polar_license_config_set_base_url(config, base_url));
  if (cache_dir != NULL) must(polar_license_config_set_cache_dir(config, cache_dir));
  return config;
}

polar_license_client *client_of(polar_license_config *config) {
  polar_license_client *client = NULL;
  if (polar_license_client_new(config, &client) != POLAR_LICENSE_STATUS_OK) {
    fprintf(stderr, "client: %s\n", polar_license_config_last_error(config));
    die("client_of");
  }
  polar_license_config_free(config);
  return client;
}
