// Output for the file plugin: CSV / JSON Lines formatting and a file that appears at its final
// path only when complete (temp file + fsync + rename + directory fsync).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace segpush::file {

// RFC 4180: a field holding a comma, quote, CR or LF is quoted, quotes doubled.
void append_csv_field(std::string& out, const char* data, size_t size);
// A JSON string literal (with quotes); control characters escaped, other bytes passed through.
void append_json_string(std::string& out, const char* data, size_t size);

// What went wrong with a file operation, classified for the ABI.
struct IoFailure {
    bool transient = false;  // disk full, quota, I/O error: worth retrying later
    bool config = false;     // the folder is missing or not writable: fix the settings
    std::string message;
};

// A file written under a hidden temporary name (.NAME.tmp-XXXXXX) in the final path's folder.
// Nothing appears at the final path until commit(); discard() (or the destructor) removes the
// temporary. Not thread-safe: the plugin declares max_concurrent_pushes = 1.
class AtomicFile {
public:
    AtomicFile() = default;
    ~AtomicFile() { discard(); }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    // Creates missing parent folders and the temporary file. false with `failure` set otherwise.
    bool create(const std::string& final_path, IoFailure& failure);
    // Appends all of `data` or nothing: after a failed write the file is cut back to its
    // previous length, so a retried batch is not written twice.
    bool append(const std::string& data, IoFailure& failure);
    // Flushes to disk; called for every file before any is renamed.
    bool sync(IoFailure& failure);
    // Renames the temporary over the final path and syncs the folder(s).
    bool commit(IoFailure& failure);
    void discard();

    bool is_open() const { return fd_ >= 0; }
    const std::string& final_path() const { return final_path_; }
    const std::string& temp_path() const { return temp_path_; }

private:
    int fd_ = -1;
    size_t size_ = 0;
    std::string final_path_;
    std::string temp_path_;
    std::vector<std::string> created_dirs_;  // parents created by create(), synced at commit
};

// `path` made absolute against the working directory, with "." and empty components removed.
std::string absolute_path(const std::string& path);
// The folder part of an absolute path ("/" for a file at the root).
std::string parent_of(const std::string& path);
// "" when `directory` exists and a file can be created in it, else why not.
std::string check_writable_directory(const std::string& directory);

}  // namespace segpush::file
