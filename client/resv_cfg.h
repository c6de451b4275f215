/*  resv_cfg.h: resv configuration, a ZPL file with environment overrides.

    Every key is a path such as "broker/frontend". Its value comes from, in
    order: the environment variable named RESV_ plus the path in capitals
    with '_' for '/' and '-' (RESV_BROKER_FRONTEND), then the ZPL file, then
    the default the caller passes. Every resv program reads its settings
    through this module so that the rule holds everywhere.
*/
#ifndef RESV_CFG_H_INCLUDED
#define RESV_CFG_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _resv_cfg_t resv_cfg_t;

//  The configuration file used when a program is given no -c option.
#define RESV_CFG_DEFAULT_PATH "config/resv.cfg"

//  Loads the ZPL file at path. With path NULL, loads RESV_CFG_DEFAULT_PATH
//  if it exists, else starts from an empty configuration (environment and
//  defaults still apply). Returns NULL, after one log line naming the file
//  and the cause, when an explicitly named file cannot be read or parsed.
//  The caller owns the result and frees it with resv_cfg_destroy.
resv_cfg_t *
    resv_cfg_load (const char *path);

//  The text of the file the configuration was loaded from, which loads
//  again to the same values; with no file, a line of comment, which loads
//  to an empty configuration. Owned by the configuration.
const char *
    resv_cfg_text (resv_cfg_t *self);

//  Logs a warning for each key of the file that is not one of known (a
//  NULL-terminated list of paths such as "broker/frontend"): a misspelt
//  key, or one in the wrong section, is otherwise silently left unused;
//  and for each key or section given twice in one section (only the first
//  is read). Returns how many it logged.
int
    resv_cfg_unknown (resv_cfg_t *self, const char *const *known);

//  Frees the configuration and nulls the pointer. NULL-safe, idempotent.
void
    resv_cfg_destroy (resv_cfg_t **self_p);

//  Returns the value of key, or dflt when it is set nowhere. The string is
//  owned by the configuration (or is dflt) and lives as long as it does.
const char *
    resv_cfg_str (resv_cfg_t *self, const char *key, const char *dflt);

//  Returns the integer value of key, or dflt when it is set nowhere. A value
//  that is not a whole number in [min, max] is logged, counted (see
//  resv_cfg_bad) and dflt is returned.
int64_t
    resv_cfg_int (resv_cfg_t *self, const char *key, int64_t dflt,
                  int64_t min, int64_t max);

//  How many values resv_cfg_int has refused. resv's programs check it once
//  they have read their configuration, and refuse to start rather than run
//  with values nobody asked for: the daemons exit RESV_CFG_EXIT, which
//  resvd takes as a reason to stop everything rather than restart (or, for
//  a worker started after resvd's start, to start no more of it).
int
    resv_cfg_bad (resv_cfg_t *self);

//  For a program's start: when resv_cfg_bad counts any, logs that who is
//  not starting, and why, and returns true.
bool
    resv_cfg_refused (resv_cfg_t *self, const char *who);

//  Counts one more bad value, found by the caller (an endpoint that is not
//  a ZeroMQ endpoint, say), which has logged why.
void
    resv_cfg_refuse (resv_cfg_t *self);

//  The exit status of a daemon whose configuration is bad (sysexits'
//  EX_CONFIG).
#define RESV_CFG_EXIT   78

//  Writes the environment variable name for key into buf (RESV_ + key in
//  capitals, '/' and '-' as '_'). Returns buf, or NULL if it does not fit.
char *
    resv_cfg_env_name (const char *key, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
