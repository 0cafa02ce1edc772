// File: tools/output.h
//
// What: line output of the subcommands. Each line is written with a single write(2) (stdout is
// usually a pipe when the demo or a test reads it: a line must arrive whole and at once, never
// sit in a stdio buffer), so lines printed from bus threads and the main thread never mix.
// A reader that went away (EPIPE; SIGPIPE is ignored) is not an error for the printer.
// Spec: none.
// Thread-safety: thread-safe (one write per line).
#ifndef UVMBUS_TOOLS_OUTPUT_H_
#define UVMBUS_TOOLS_OUTPUT_H_

#include <string_view>

#include <fmt/format.h>

namespace uvmbus::tools {

// `text` + '\n' to stdout / stderr.
void PrintLine(std::string_view text);
void PrintErrorLine(std::string_view text);

template <typename... Args>
void Print(fmt::format_string<Args...> format, Args&&... args) {
  PrintLine(fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void PrintError(fmt::format_string<Args...> format, Args&&... args) {
  PrintErrorLine(fmt::format(format, std::forward<Args>(args)...));
}

// Writes `text` as is (no newline added) to stdout; for multi-line blocks such as `ls` output.
void PrintRaw(std::string_view text);

}  // namespace uvmbus::tools

#endif  // UVMBUS_TOOLS_OUTPUT_H_
