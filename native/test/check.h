// Minimal test harness for the native C++ tests (native/test/test_*.cpp).
// Each TEST registers itself; main() runs them all and prints one `PASS name` or
// `FAIL name: message` line per test, then `native: N passed, N failed`. The process exits
// non-zero when any test fails (unlike llm.c's famous CPU test, failure is never exit 0).
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace check {

struct Failure { std::string message; };
// Thrown by SKIP_TEST: the test cannot run here (e.g. the CPU lacks an instruction set).
struct Skipped { std::string reason; };

struct Registry {
  std::vector<std::pair<std::string, std::function<void()>>> tests;
  static Registry& get() { static Registry r; return r; }
};

struct Register {
  Register(const char* name, std::function<void()> fn) { Registry::get().tests.emplace_back(name, std::move(fn)); }
};

inline void fail(const char* file, int line, const std::string& msg) {
  std::ostringstream os;
  os << file << ":" << line << ": " << msg;
  throw Failure{os.str()};
}

// |got - want| <= atol + rtol * |want|, element by element; reports the worst element.
template <typename A, typename B>
inline void close(const char* file, int line, const A* got, const B* want, size_t n, double atol, double rtol,
                  const char* what) {
  for (size_t i = 0; i < n; i++) {
    double g = (double)got[i], w = (double)want[i];
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w))) {
      std::ostringstream os;
      os << what << "[" << i << "]: got " << g << " want " << w << " (atol " << atol << ", rtol " << rtol << ")";
      fail(file, line, os.str());
    }
  }
}

#define CHECK_CONCAT2(a, b) a##b
#define CHECK_CONCAT(a, b) CHECK_CONCAT2(a, b)
#define TEST(name)                                                                    \
  static void CHECK_CONCAT(test_, name)();                                            \
  static check::Register CHECK_CONCAT(reg_, name)(#name, CHECK_CONCAT(test_, name)); \
  static void CHECK_CONCAT(test_, name)()
#define EXPECT(cond)                                                      \
  do {                                                                    \
    if (!(cond)) check::fail(__FILE__, __LINE__, "expected: " #cond);     \
  } while (0)
#define EXPECT_MSG(cond, msg)                                                         \
  do {                                                                                \
    if (!(cond)) { std::ostringstream os_; os_ << msg; check::fail(__FILE__, __LINE__, os_.str()); } \
  } while (0)
// expr must throw a std::exception whose message contains `part`.
#define EXPECT_THROWS_MSG(expr, part)                                                                     \
  do {                                                                                                    \
    std::string what_ = "nothing was thrown";                                                           \
    try {                                                                                                 \
      (void)(expr);                                                                                       \
    } catch (const std::exception& e_) {                                                                 \
      what_ = e_.what();                                                                                  \
    }                                                                                                     \
    if (what_.find(part) == std::string::npos)                                                           \
      check::fail(__FILE__, __LINE__, std::string("expected " #expr " to throw \"") + (part) + "\", got: " + what_); \
  } while (0)
// Ends the test as skipped, printing `SKIP name: reason`.
#define SKIP_TEST(reason) throw check::Skipped{reason}
#define EXPECT_CLOSE(got, want, n, atol, rtol) check::close(__FILE__, __LINE__, got, want, n, atol, rtol, #got)

struct Counts { int passed = 0, failed = 0, skipped = 0; };

// Runs every registered test whose name contains `only` (all when null). With a skip reason,
// each test prints `SKIP name: reason` instead of running (e.g. GPU tests without a device).
inline Counts run_all(const char* only, const char* skip_reason = nullptr) {
  Counts c;
  for (auto& [name, fn] : Registry::get().tests) {
    if (only && name.find(only) == std::string::npos) continue;
    if (skip_reason) {
      std::printf("SKIP %s: %s\n", name.c_str(), skip_reason);
      c.skipped++;
      continue;
    }
    try {
      fn();
      std::printf("PASS %s\n", name.c_str());
      c.passed++;
    } catch (const Skipped& s) {
      std::printf("SKIP %s: %s\n", name.c_str(), s.reason.c_str());
      c.skipped++;
    } catch (const Failure& f) {
      std::printf("FAIL %s: %s\n", name.c_str(), f.message.c_str());
      c.failed++;
    } catch (const std::exception& e) {
      std::printf("FAIL %s: uncaught exception: %s\n", name.c_str(), e.what());
      c.failed++;
    }
    std::fflush(stdout);
  }
  return c;
}

}  // namespace check

// Define CHECK_MAIN in exactly one translation unit of a test binary (the runner does it).
#ifdef CHECK_MAIN
int main(int argc, char** argv) {
  const check::Counts c = check::run_all(argc > 1 ? argv[1] : nullptr);
  std::printf("native: %d passed, %d failed\n", c.passed, c.failed);
  return c.failed == 0 ? 0 : 1;
}
#endif
