/*  jscan.h: checks JSON text without building it.

    The broker checks every event it journals, and every consumer reads
    the journaled text with jansson: an event that jansson would refuse
    must never be journaled, or it would stop every consumer at it. Parsing
    each event with jansson only to check it costs about a hundred
    allocations per event; jscan reads the same text in place and
    allocates nothing for ordinary events.

    jscan accepts exactly what json_loadb accepts with JSON_DECODE_ANY,
    JSON_DISABLE_EOF_CHECK and JSON_REJECT_DUPLICATES (jscan_test checks
    this against jansson itself): strict RFC 8259 syntax, strings of valid
    UTF-8 with no U+0000 and no lone surrogate, integers that fit in 64
    bits, reals that do not overflow a double, at most 2048 levels of
    nesting, and no object with two equal keys (compared as decoded).
*/
#ifndef JSCAN_H_INCLUDED
#define JSCAN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    JSCAN_OBJECT,
    JSCAN_ARRAY,
    JSCAN_STRING,
    JSCAN_NUMBER,
    JSCAN_LITERAL               //  true, false or null
} jscan_kind_t;

//  The longest key jscan_object hands over whole; longer keys are cut
//  (key_size still says their whole length).
#define JSCAN_KEY_MAX   255

//  Called by jscan_object for each member of the object, in order: key
//  decoded and NUL-terminated, key_size its length; value and value_size
//  the member's value as it is in the text (a string with its quotes).
//  Returns false to stop the scan, which then fails.
typedef bool (jscan_member_fn) (void *arg, const char *key, size_t key_size,
                                const char *value, size_t value_size,
                                jscan_kind_t kind);

//  Reads the JSON value at the start of text (size bytes at most; leading
//  white space is skipped). Returns how many bytes it takes, through the
//  value's last byte; 0 if the text does not start with a valid value.
size_t
    jscan_value (const char *text, size_t size);

//  As jscan_value, for a value that must be an object; calls member, if
//  not NULL, for each of its members. Returns 0 if the text is not an
//  object, is not valid, or member returned false.
size_t
    jscan_object (const char *text, size_t size, jscan_member_fn *member,
                  void *arg);

//  As jscan_object, refusing also a text that nests more than depth_max
//  levels (the object is level 1, a value in it level 2; depth_max at
//  most 2048): for a text that other JSON documents will carry, each
//  container around it a level deeper, within jansson's 2048.
size_t
    jscan_object_max (const char *text, size_t size, int depth_max,
                      jscan_member_fn *member, void *arg);

//  Called by jscan_array for each item of the array, in order: value and
//  value_size the item as it is in the text. Returns false to stop the
//  scan, which then fails.
typedef bool (jscan_item_fn) (void *arg, const char *value, size_t value_size,
                              jscan_kind_t kind);

//  As jscan_value, for a value that must be an array; calls item, if not
//  NULL, for each of its items. Returns 0 if the text is not an array, is
//  not valid, or item returned false.
size_t
    jscan_array (const char *text, size_t size, jscan_item_fn *item,
                 void *arg);

//  Decodes a string value as jscan read it (with its quotes) into out, at
//  most out_max - 1 bytes and a NUL. Returns the decoded length, which
//  may be more than out held.
size_t
    jscan_string (const char *value, size_t value_size, char *out,
                  size_t out_max);

#ifdef __cplusplus
}
#endif

#endif
