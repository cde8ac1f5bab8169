#include <catch2/catch.hpp>

#include <cstdlib>

#include "secrets/redactor.hpp"
#include "secrets/reference.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

TEST_CASE("secret references parse only in their exact form") {
    CHECK(parse_secret_reference("${env:AC_KEY}")->kind == SecretReference::Kind::env);
    CHECK(parse_secret_reference("${file:keys/ac.txt}")->target == "keys/ac.txt");
    CHECK_FALSE(parse_secret_reference("prefix ${env:AC_KEY}"));
    CHECK_FALSE(parse_secret_reference("${vault:x}"));
    CHECK_FALSE(parse_secret_reference("plain-value"));
}

TEST_CASE("resolved secrets are scrubbed from anything printed afterwards") {
    test::TempDir dir;
    dir.write("key.txt", "file-secret-value-77\n");
    std::string problem;
    auto value = resolve_secret_reference({SecretReference::Kind::file, "key.txt"}, dir.path().string(), problem);
    REQUIRE(value);
    CHECK(*value == "file-secret-value-77");  // trailing newline dropped
    CHECK(Redactor::instance().scrub("sent file-secret-value-77 twice: file-secret-value-77") == "sent *** twice: ***");
}

TEST_CASE("unresolvable references explain themselves without values") {
    std::string problem;
    unsetenv("SEGPUSH_TEST_UNSET_VARIABLE");
    CHECK_FALSE(resolve_secret_reference({SecretReference::Kind::env, "SEGPUSH_TEST_UNSET_VARIABLE"}, ".", problem));
    CHECK(problem == "environment variable SEGPUSH_TEST_UNSET_VARIABLE is not set");
    CHECK_FALSE(resolve_secret_reference({SecretReference::Kind::file, "/nonexistent/key"}, ".", problem));
    CHECK_THAT(problem, Catch::Contains("cannot read secret file /nonexistent/key"));
}
