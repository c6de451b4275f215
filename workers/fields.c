/*  fields.c: checked reading of request fields (see fields.h).  */

#include "fields.h"
#include "worker.h"
#include "resv_util.h"
#include "jscan.h"

static int
s_bad (zframe_t **reply_p, const char *key, const char *what)
{
    *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                             "%s must be %s", key, what);
    return -1;
}

//  Gets the member; -1 (with the reply set) if required and missing, 0
//  with *value_p NULL if optional and missing. JSON null counts as missing.
static int
s_member (json_t *request, const char *key, bool required, json_t **value_p,
          zframe_t **reply_p)
{
    json_t *value = json_object_get (request, key);
    if (json_is_null (value))
        value = NULL;
    *value_p = value;
    if (!value && required) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "%s is required", key);
        return -1;
    }
    return 0;
}

int
field_string (json_t *request, const char *key, bool required, size_t max,
              const char **out_p, zframe_t **reply_p)
{
    json_t *value;
    if (s_member (request, key, required, &value, reply_p))
        return -1;
    if (!value)
        return 0;
    if (!max)
        max = FIELD_TEXT_MAX;
    if (!json_is_string (value) || json_string_length (value) == 0
    ||  json_string_length (value) > max) {
        char what [64];
        snprintf (what, sizeof what, "a string of 1 to %zu bytes", max);
        return s_bad (reply_p, key, what);
    }
    const char *text = json_string_value (value);
    for (const unsigned char *c = (const unsigned char *) text; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return s_bad (reply_p, key, "text without control characters");
    //  jansson refuses \u0000 when parsing, but a NUL cannot hide anyway:
    //  the length would not match.
    if (strlen (text) != json_string_length (value))
        return s_bad (reply_p, key, "text without NUL characters");
    *out_p = text;
    return 0;
}

int
field_token (json_t *request, const char *key, bool required,
             const char **out_p, zframe_t **reply_p)
{
    static const char *chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789._:@+-";
    const char *text = NULL;
    if (field_string (request, key, required, FIELD_TOKEN_MAX, &text, reply_p))
        return -1;
    if (text && text [strspn (text, chars)])
        return s_bad (reply_p, key, "1 to 64 letters, digits or '._:@+-'");
    if (text)
        *out_p = text;
    return 0;
}

int
field_int (json_t *request, const char *key, bool required, int64_t min,
           int64_t max, int64_t *out_p, zframe_t **reply_p)
{
    json_t *value;
    if (s_member (request, key, required, &value, reply_p))
        return -1;
    if (!value)
        return 0;
    if (!json_is_integer (value) || json_integer_value (value) < min
    ||  json_integer_value (value) > max) {
        char what [96];
        snprintf (what, sizeof what, "a whole number from %" PRId64 " to %"
                  PRId64, min, max);
        return s_bad (reply_p, key, what);
    }
    *out_p = json_integer_value (value);
    return 0;
}

int
field_date (json_t *request, const char *key, bool required,
            const char **out_p, int64_t *day_p, zframe_t **reply_p)
{
    json_t *value;
    if (s_member (request, key, required, &value, reply_p))
        return -1;
    if (!value)
        return 0;
    //  Any string that is not one gets this answer, whatever its length.
    //  resv_date_parse lets 2026-02-30 through as March 2nd (timegm
    //  normalises the struct it is handed), so a real date is also one
    //  that formats back to itself.
    const char *text = json_string_value (value);
    char again [16];
    if (!text || json_string_length (value) != 10
    ||  !resv_date_parse (text, day_p)
    ||  !streq (resv_date_format (*day_p, again), text))
        return s_bad (reply_p, key, "a real date, YYYY-MM-DD, from 1970 on");
    *out_p = text;
    return 0;
}

int
field_choice (json_t *request, const char *key, bool required,
              const char **choices, const char **out_p, zframe_t **reply_p)
{
    const char *text = NULL;
    if (field_string (request, key, required, 0, &text, reply_p))
        return -1;
    if (!text)
        return 0;
    char what [200] = "one of";
    for (const char **choice = choices; *choice; choice++) {
        if (streq (text, *choice)) {
            *out_p = *choice;
            return 0;
        }
        size_t len = strlen (what);
        snprintf (what + len, sizeof what - len, "%s %s",
                  choice == choices? "": ",", *choice);
    }
    return s_bad (reply_p, key, what);
}

int
field_only (json_t *request, const char **keys, zframe_t **reply_p)
{
    const char *key;
    json_t *value;
    json_object_foreach (request, key, value) {
        const char **known = keys;
        while (*known && !streq (*known, key))
            known++;
        if (!*known) {
            //  The key is quoted only when short and plain, so the message
            //  never carries a cut UTF-8 sequence or a control character.
            bool plain = strlen (key) <= 64;
            for (const char *c = key; plain && *c; c++)
                plain = *c > 0x20 && *c < 0x7f;
            if (plain)
                *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                         "unknown field '%s'", key);
            else
                *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                         "unknown field (a long or unusual name)");
            return -1;
        }
    }
    return 0;
}


//  What s_sparse_member builds: the object, the paths wanted, and the
//  path of the object's members ("" at the top, "data." below "data").
typedef struct {
    json_t *object;
    const char *const *lists [2];
    char path [128];
} s_sparse_t;

//  A kept value, as json_loadb would make it of its text (which jscan has
//  checked): the usual ones (a string without escapes, an integer of at
//  most 18 characters, which always fits, a literal) are made at once,
//  anything else is parsed by jansson.
static json_t *
s_sparse_value (const char *value, size_t size, jscan_kind_t kind)
{
    if (kind == JSCAN_STRING && !memchr (value, '\\', size))
        return json_stringn_nocheck (value + 1, size - 2);
    if (kind == JSCAN_NUMBER && size <= 18
    &&  !memchr (value, '.', size) && !memchr (value, 'e', size)
    &&  !memchr (value, 'E', size)) {
        char digits [24];
        memcpy (digits, value, size);
        digits [size] = 0;
        return json_integer (strtoll (digits, NULL, 10));
    }
    if (kind == JSCAN_LITERAL)
        return *value == 't'? json_true (): *value == 'f'? json_false ():
                              json_null ();
    return json_loadb (value, size, JSON_DECODE_ANY, NULL);
}

//  Keeps a member that a path names, whole; goes into an object member
//  that a path names a member of.
static bool
s_sparse_member (void *arg, const char *key, size_t key_size,
                 const char *value, size_t value_size, jscan_kind_t kind)
{
    s_sparse_t *self = (s_sparse_t *) arg;
    //  The member's path: the object's, then the key (every member of
    //  every event read comes here: no snprintf).
    char path [sizeof self->path];
    size_t prefix = strlen (self->path);
    if (prefix + key_size + 2 > sizeof path || key_size != strlen (key))
        return true;            //  No path names it
    memcpy (path, self->path, prefix);
    memcpy (path + prefix, key, key_size + 1);
    int size = (int) (prefix + key_size);
    bool keep = false;
    bool inside = false;
    for (int list = 0; list < 2 && !keep; list++)
        for (const char *const *field = self->lists [list];
             field && *field && !keep; field++) {
            if (streq (*field, path))
                keep = true;
            else
            if (kind == JSCAN_OBJECT && strncmp (*field, path, (size_t) size) == 0
            &&  (*field) [size] == '.')
                inside = true;
        }
    json_t *member = NULL;
    if (keep)
        member = s_sparse_value (value, value_size, kind);
    else
    if (inside) {
        s_sparse_t inner = { json_object (), { self->lists [0], self->lists [1] },
                             "" };
        memcpy (inner.path, path, (size_t) size);      //  Fits: see above
        memcpy (inner.path + size, ".", 2);
        if (inner.object && jscan_object (value, value_size, s_sparse_member,
                                          &inner) == value_size)
            member = inner.object;
        else
            json_decref (inner.object);
    }
    else
        return true;
    return member && json_object_set_new (self->object, key, member) == 0;
}

json_t *
field_sparse (const char *text, size_t size, const char *const *fields,
              const char *const *more)
{
    s_sparse_t top = { json_object (), { fields, more }, "" };
    if (top.object && jscan_object (text, size, s_sparse_member, &top) == size)
        return top.object;
    json_decref (top.object);
    return NULL;
}
