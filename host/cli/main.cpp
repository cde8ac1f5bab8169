#include <iostream>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return segpush::run_cli(args, std::cout, std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "segpush: internal error: " << e.what() << "\n";
        return segpush::kExitFailure;
    }
}
