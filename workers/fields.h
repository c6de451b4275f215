/*  fields.h: checked reading of request fields, for service handlers, and
    the partial parse of a JSON text into the members a reader needs.

    Each getter reads one member of a JSON request object and checks it.
    On a bad or missing (when required) member it sets *reply_p to a 400
    error frame whose message names the field and what it must be, and
    returns -1; the handler then returns RESV_BAD_REQUEST with that reply.
    A missing optional member leaves *out_p at the default and returns 0.
    The strings returned point into the request object (borrowed).
*/
#ifndef FIELDS_H_INCLUDED
#define FIELDS_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest text field (names, ids, reasons), in bytes.
#define FIELD_TEXT_MAX 256

//  A string of 1 to max bytes (max 0: FIELD_TEXT_MAX), no control chars.
int
    field_string (json_t *request, const char *key, bool required,
                  size_t max, const char **out_p, zframe_t **reply_p);

//  Longest identifier, in bytes.
#define FIELD_TOKEN_MAX 64

//  An identifier (ids, customers, owners, request ids): 1 to
//  FIELD_TOKEN_MAX letters, digits or "._:@+-". Names are free text, but an
//  identifier with spaces, quotes or SQL in it is a mistake, and "alice"
//  and "alice " must never be two people.
int
    field_token (json_t *request, const char *key, bool required,
                 const char **out_p, zframe_t **reply_p);

//  An integer in [min, max] (JSON numbers only: "3" is refused).
int
    field_int (json_t *request, const char *key, bool required,
               int64_t min, int64_t max, int64_t *out_p, zframe_t **reply_p);

//  A real calendar date "YYYY-MM-DD"; *day_p gets its day number.
int
    field_date (json_t *request, const char *key, bool required,
                const char **out_p, int64_t *day_p, zframe_t **reply_p);

//  One of the words in the NULL-terminated list choices.
int
    field_choice (json_t *request, const char *key, bool required,
                  const char **choices, const char **out_p,
                  zframe_t **reply_p);

//  Refuses a request with a member not in the NULL-terminated list keys,
//  so that a misspelt option is not silently ignored.
int
    field_only (json_t *request, const char **keys, zframe_t **reply_p);

//  Parses the JSON object text (size bytes) into the members named by
//  fields or more (each NULL-terminated, more may be NULL), as paths:
//  "id" keeps the member id whole, "data.owner" the member owner of the
//  object data (and data with it, holding what is kept). The rest is
//  checked (it must be valid JSON, as for json_loadb) but not built, which
//  costs a fraction of a whole parse. Returns the object (caller owns), or
//  NULL when text is not a valid JSON object or there is no memory.
json_t *
    field_sparse (const char *text, size_t size, const char *const *fields,
                  const char *const *more);

#ifdef __cplusplus
}
#endif

#endif
