#include "config/yaml_bounds.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace segpush {

std::string describe_bytes(size_t bytes) {
    if (bytes >= (size_t{1} << 20) && bytes % (size_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

std::string describe_count(uint64_t count) {
    std::string digits = std::to_string(count);
    for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(static_cast<size_t>(at), ",");
    return digits;
}

namespace {

// Counts saturate here: a chain of aliases can stand for more nodes than 64 bits hold.
constexpr uint64_t kSaturated = uint64_t{1} << 62;

uint64_t saturating_add(uint64_t a, uint64_t b) { return std::min(kSaturated, a + std::min(b, kSaturated)); }

struct BoundCrossed {
    YamlBoundProblem problem;
};

// Sizes each node would have once its aliases are expanded, computed bottom-up from the
// parser's events: an alias costs what its anchor's node cost, looked up, never walked.
class BoundsScan : public YAML::EventHandler {
public:
    explicit BoundsScan(uint64_t node_budget) : budget_(node_budget) {}

    uint64_t nodes() const { return nodes_; }

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}

    void OnAnchor(const YAML::Mark&, const std::string& name) override { pending_anchor_name_ = name; }

    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  const std::string& value) override {
        leaf(mark, anchor);
        if (!stack_.empty() && stack_.back().map && stack_.back().children % 2 == 1) stack_.back().key = value;
    }

    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        const auto found = anchors_.find(anchor);
        if (found == anchors_.end()) {
            // The parser knows the anchor, so it names a list or mapping still open around this
            // alias: yaml-cpp would build a node that contains itself, endless to walk.
            cross(mark, "this alias names a list or mapping that contains it, which would make the value endless");
        }
        const Extent extent = found->second;
        const std::string shown = extent.name.empty() ? "this alias" : "alias *" + extent.name;
        if (static_cast<uint64_t>(stack_.size()) + extent.height > static_cast<uint64_t>(kMaxYamlDepth)) {
            cross(mark, "nests more than " + std::to_string(kMaxYamlDepth) + " levels deep once " + shown +
                            " is expanded; segpush refuses deeper YAML so that reading it cannot exhaust its stack");
        }
        count(mark, extent.nodes,
              shown + " stands for " +
                  (extent.nodes > budget_ ? "more than " + describe_count(budget_) : describe_count(extent.nodes)) +
                  " nodes");
        attach(extent);
    }

    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        open(mark, anchor, false);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        open(mark, anchor, true);
    }
    void OnMapEnd() override { close(); }

private:
    struct Extent {
        uint64_t nodes;    // this node and everything under it, aliases expanded
        uint64_t height;   // levels, itself included
        std::string name;  // the anchor's name, for messages
    };
    struct Frame {
        bool map = false;
        YAML::anchor_t anchor = 0;
        std::string anchor_name;
        uint64_t nodes = 1;
        uint64_t height = 1;
        uint64_t children = 0;
        std::string key;  // the current entry's key, when it is a scalar
    };

    // Where the current node is, as a key path; past 16 levels the rest is elided.
    std::string path() const {
        std::string out;
        size_t levels = 0;
        for (const Frame& frame : stack_) {
            if (++levels > 16) {
                out += "...";
                break;
            }
            if (frame.map) {
                if (frame.children % 2 == 0) break;  // at a key: the path is the map's
                out += (out.empty() ? "" : ".") + (frame.key.empty() ? std::string("?") : frame.key);
            } else {
                out += "[" + std::to_string(frame.children) + "]";
            }
        }
        return out;
    }

    [[noreturn]] void cross(const YAML::Mark& mark, const std::string& message) {
        throw BoundCrossed{{mark.line + 1, mark.column + 1, path(), message}};
    }

    void check_depth(const YAML::Mark& mark) {
        if (stack_.size() + 1 > static_cast<size_t>(kMaxYamlDepth)) {
            cross(mark, "nests more than " + std::to_string(kMaxYamlDepth) +
                            " levels deep; segpush refuses deeper YAML so that reading it cannot exhaust its stack");
        }
    }

    // `alias` describes the alias being counted; empty for any other node.
    void count(const YAML::Mark& mark, uint64_t added, const std::string& alias = "") {
        nodes_ = saturating_add(nodes_, added);
        if (nodes_ <= budget_) return;
        const std::string what = budget_ >= kMaxYamlNodesPerFile
                                     ? "this file holds more than " + describe_count(budget_) + " YAML nodes"
                                     : "with the files read before it, the configuration holds more than " +
                                           describe_count(kMaxYamlNodesPerConfig) + " YAML nodes";
        if (alias.empty()) {
            cross(mark, what + " (each use of an alias counts in full); segpush reads no further so that no "
                               "configuration can exhaust its memory: split it into included files");
        }
        cross(mark, what + " once its aliases are expanded (" + alias +
                        "); segpush stops here so that a few lines of anchors and aliases cannot exhaust its "
                        "memory: use fewer aliases, or split the configuration into included files");
    }

    std::string take_anchor_name(YAML::anchor_t anchor) {
        std::string name = anchor ? pending_anchor_name_ : std::string();
        pending_anchor_name_.clear();
        return name;
    }

    void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
        check_depth(mark);
        const std::string name = take_anchor_name(anchor);
        count(mark, 1);
        const Extent extent{1, 1, name};
        if (anchor) anchors_[anchor] = extent;
        attach(extent);
    }

    void open(const YAML::Mark& mark, YAML::anchor_t anchor, bool map) {
        check_depth(mark);
        const std::string name = take_anchor_name(anchor);
        count(mark, 1);
        Frame frame;
        frame.map = map;
        frame.anchor = anchor;
        frame.anchor_name = name;
        stack_.push_back(std::move(frame));
    }

    void close() {
        Frame frame = std::move(stack_.back());
        stack_.pop_back();
        const Extent extent{frame.nodes, frame.height, frame.anchor_name};
        if (frame.anchor) anchors_[frame.anchor] = extent;
        attach(extent);
    }

    // Adds a finished child to the node it is in.
    void attach(const Extent& child) {
        if (stack_.empty()) return;
        Frame& parent = stack_.back();
        parent.nodes = saturating_add(parent.nodes, child.nodes);
        parent.height = std::max(parent.height, child.height + 1);
        if (parent.map && parent.children % 2 == 0) parent.key.clear();  // a new entry's key
        ++parent.children;
    }

    uint64_t budget_;
    uint64_t nodes_ = 0;
    std::vector<Frame> stack_;
    std::unordered_map<YAML::anchor_t, Extent> anchors_;
    std::string pending_anchor_name_;
};

}  // namespace

std::optional<YamlBoundProblem> check_yaml_bounds(const std::string& text, uint64_t node_budget, uint64_t& nodes) {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    BoundsScan scan(node_budget);
    try {
        parser.HandleNextDocument(scan);
    } catch (const BoundCrossed& crossed) {
        nodes = scan.nodes();
        return crossed.problem;
    }
    nodes = scan.nodes();
    return std::nullopt;
}

}  // namespace segpush
