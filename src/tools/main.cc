// File: tools/main.cc
//
// The `uvmbus` executable: everything lives in the tools library (cli.h); see docs/cli.md.
#include "tools/cli.h"

int main(int argc, char** argv) { return uvmbus::tools::Main(argc, argv); }
