// File: common/thread_annotations.h
//
// What: clang -Wthread-safety annotations (no-ops on other compilers), LevelDB/Abseil style.
#ifndef UVMBUS_COMMON_THREAD_ANNOTATIONS_H_
#define UVMBUS_COMMON_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define UVMBUS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define UVMBUS_THREAD_ANNOTATION(x)
#endif

#define GUARDED_BY(x) UVMBUS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) UVMBUS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) UVMBUS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) UVMBUS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS UVMBUS_THREAD_ANNOTATION(no_thread_safety_analysis)

#endif  // UVMBUS_COMMON_THREAD_ANNOTATIONS_H_
