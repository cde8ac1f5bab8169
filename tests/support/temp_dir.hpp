#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace segpush::test {

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
public:
    TempDir() : TempDir(std::filesystem::temp_directory_path()) {}
    // Under `parent` (created if needed) instead: for plugins, which segpush loads only from
    // folders that nobody but root and the user can write to, all the way up.
    explicit TempDir(const std::filesystem::path& parent) {
        if (std::filesystem::create_directories(parent)) {
            std::filesystem::permissions(parent,
                                         std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                             std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                             std::filesystem::perms::others_exec);
        }
        std::string pattern = (parent / "segpush-test-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& relative) const { return (path_ / relative).string(); }

    // Writes `content` to `relative` (folders created) and returns the full path.
    std::string write(const std::string& relative, const std::string& content) const {
        const auto full = path_ / relative;
        std::filesystem::create_directories(full.parent_path());
        std::ofstream(full, std::ios::binary) << content;
        return full.string();
    }

private:
    std::filesystem::path path_;
};

}  // namespace segpush::test
