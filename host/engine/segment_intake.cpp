#include "engine/segment_intake.hpp"

#include "engine/run_failure.hpp"
#include "log/log.hpp"
#include "text/suggest.hpp"

namespace segpush {

SegmentIntake::SegmentIntake(const Config& config, const ExportConfig& export_config, const RecordPlan& plan,
                             RunMembers& members, RunCounts& counts, const std::atomic<bool>& cancel)
    : export_(export_config), plan_(plan), members_(members), counts_(counts), cancel_(cancel) {
    for (const auto& name : export_.segments) {
        const SegmentConfig* segment = config.find_segment(name);
        sources_.push_back(segment->path);
        SegmentOpenOptions options;
        options.fifo_timeout = segment->fifo_timeout;
        options.stop = [this] { return cancel_.load() || stop_reading_.load(); };
        readers_.push_back(open_segment(segment->path, segment->source, plan_.columns, options));
        // Asked now: once the feed runs, the readers are its own until it ends.
        columns_checked_when_opened_ = columns_checked_when_opened_ && readers_.back()->columns_checked_when_opened();
    }
    feed_ = std::make_unique<SegmentFeed>(readers_, plan_, cancel_);
}

SegmentIntake::~SegmentIntake() { stop(); }

void SegmentIntake::stop() {
    stop_reading_ = true;
    feed_.reset();
}

void SegmentIntake::stage(std::chrono::milliseconds wait, int64_t max_rows) {
    auto got = feed_->next(chunk_, wait);
    if (got == SegmentFeed::Got::nothing_yet) return;
    members_.begin_staging();
    // A read error leaves by exception: the rows staged before it are committed then too, so
    // that the run's end is recorded outside the staging transaction.
    struct StagingGuard {
        RunMembers& members;
        bool ended = false;
        void end() {
            members.end_staging();
            ended = true;
        }
        ~StagingGuard() {
            if (ended) return;
            try {
                members.end_staging();
            } catch (const std::exception&) {  // already failing: the first error is the one to report
            }
        }
    } staging{members_};
    for (int64_t staged = 0; got == SegmentFeed::Got::chunk;) {
        stage_chunk(chunk_);
        staged += static_cast<int64_t>(chunk_.rows.size());
        got = staged < max_rows ? feed_->next(chunk_, std::chrono::milliseconds(0)) : SegmentFeed::Got::nothing_yet;
    }
    staging.end();
    if (got != SegmentFeed::Got::end) return;
    for (size_t source = 0; source < readers_.size(); ++source)
        check_columns_present(*readers_[source], sources_[source]);
    members_.all_members_staged();
    done_ = true;
}

void SegmentIntake::stage_all() {
    while (!done_ && !cancel_) stage(std::chrono::milliseconds(100), 20000);
    if (cancel_) {
        throw RunFailure{RunStatus::cancelled, "cancelled while reading the segment, after " +
                                                   std::to_string(counts_.rows_read) + " rows; nothing was sent"};
    }
}

void SegmentIntake::stage_chunk(const FeedChunk& chunk) {
    for (const FeedRow& row : chunk.rows) {
        ++counts_.rows_read;
        const auto source = static_cast<int64_t>(row.source);
        const auto line = static_cast<int64_t>(row.line);
        switch (row.kind) {
            case FeedRow::Kind::unreadable:
                ++counts_.invalid;
                members_.stage_reject(source, line, "", chunk.at(row.reason));
                break;
            case FeedRow::Kind::invalid:
                ++counts_.invalid;
                members_.stage_reject(source, line, chunk.at(row.key_value), chunk.at(row.reason));
                break;
            case FeedRow::Kind::member:
                if (members_.stage_member(last_seq_ + 1, chunk.at(row.key), chunk.at(row.key_value), row.hash,
                                          chunk.at(row.payload), source, line)) {
                    ++last_seq_;
                } else {
                    ++counts_.duplicates;
                }
                break;
        }
    }
}

// A column a required field needs that no row had is a mistake in the mapping or the file, so
// the run stops before anything is sent; an optional one may just be empty everywhere.
void SegmentIntake::check_columns_present(const SegmentReader& reader, const std::string& path) const {
    for (const auto& column : reader.absent_columns()) {
        bool required = false;
        std::string fields;
        for (const auto& field : plan_.fields) {
            if (field.column != column) continue;
            required = required || field.required;
            fields += (fields.empty() ? "" : ", ") + field.id;
        }
        const std::string message = "segment file " + path + ": no row has the column \"" + column +
                                    "\" that the mapping reads for " + fields +
                                    did_you_mean(column, reader.present_columns());
        if (required) throw SegmentError(message + "; its rows have " + join(reader.present_columns(), ", "));
        log_line(LogLevel::warn, "export " + export_.name + ": " + message);
    }
}

}  // namespace segpush
