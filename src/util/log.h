/* log.h: leveled, line-oriented logging to stderr. */
#ifndef HK_LOG_H
#define HK_LOG_H

enum hk_log_level { HK_LOG_DEBUG, HK_LOG_INFO, HK_LOG_WARN, HK_LOG_ERROR };

/** Sets the lowest level that is written. */
void hk_log_set_level(enum hk_log_level level);

/** Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int hk_log_parse_level(const char *s);

/** Writes one line "TIME LEVEL message" to stderr when level is enabled. */
void hk_log(enum hk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hk_debug(...) hk_log(HK_LOG_DEBUG, __VA_ARGS__)
#define hk_info(...) hk_log(HK_LOG_INFO, __VA_ARGS__)
#define hk_warn(...) hk_log(HK_LOG_WARN, __VA_ARGS__)
#define hk_error(...) hk_log(HK_LOG_ERROR, __VA_ARGS__)

#endif
