// What the code under test writes to the process's stderr (the host's log lines) while it runs.
#pragma once

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test {

template <typename Body>
std::string captured_stderr(const TempDir& dir, Body body) {
    const std::string path = dir.file("stderr.txt");
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE((saved >= 0 && fd >= 0));
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
    body();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    return read_file(path);
}

}  // namespace segpush::test
