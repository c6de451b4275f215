/*  jscan.c: checks JSON text without building it (see jscan.h).

    A recursive descent over the text, one function per kind of value. It
    keeps only the keys of the objects it is inside, to refuse a key seen
    twice: a hash of each decoded key, on a stack shared by all levels,
    searched in a line for small objects and through a table for large
    ones, so that no text costs more than about linear time.
*/

//  strtod_l, to read reals in the C locale whatever the process set.
#define _GNU_SOURCE
#include "jscan.h"
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Deepest nesting, as jansson's JSON_PARSER_MAX_DEPTH: the top value is
//  at depth 1, and every value inside a container one deeper.
#define S_DEPTH_MAX     2048

//  Keys held without allocating, and the count from which an object's
//  keys are searched through a hash table rather than one by one.
#define S_KEYS_INLINE   64
#define S_KEYS_LINEAR   32

typedef struct {
    uint64_t hash;              //  Of the decoded key
    const unsigned char *token; //  The key as written, with its quotes
    size_t size;                //  Bytes of token
} s_key_t;

typedef struct {
    const unsigned char *at;    //  Next byte to read
    const unsigned char *end;   //  Past the last byte
    int depth;                  //  Of the value being read
    int depth_max;              //  Deepest level taken
    s_key_t *keys;              //  Keys of the objects being read
    size_t nkeys;
    size_t maxkeys;
    s_key_t inline_keys [S_KEYS_INLINE];
} s_scan_t;

static bool s_value (s_scan_t *self, jscan_kind_t *kind_p);

#define S_FNV_OFFSET    14695981039346656037ULL
#define S_FNV_PRIME     1099511628211ULL

static inline uint64_t
s_hash_byte (uint64_t hash, unsigned char byte)
{
    return (hash ^ byte) * S_FNV_PRIME;
}

static inline bool
s_is_digit (unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool
s_is_alpha (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline void
s_space (s_scan_t *self)
{
    while (self->at < self->end
       && (*self->at == ' ' || *self->at == '\t'
        || *self->at == '\n' || *self->at == '\r'))
        self->at++;
}

//  Takes the byte c if it comes next.
static inline bool
s_take (s_scan_t *self, unsigned char c)
{
    if (self->at < self->end && *self->at == c) {
        self->at++;
        return true;
    }
    return false;
}

//  Length of the valid UTF-8 sequence of two to four bytes at at, or 0:
//  no overlong forms, no surrogates, nothing past U+10FFFF.
static size_t
s_utf8 (const unsigned char *at, const unsigned char *end)
{
    unsigned char first = at [0];
    size_t count;
    uint32_t value;
    if (first >= 0xC2 && first <= 0xDF) {
        count = 2;
        value = first & 0x1F;
    }
    else
    if (first >= 0xE0 && first <= 0xEF) {
        count = 3;
        value = first & 0x0F;
    }
    else
    if (first >= 0xF0 && first <= 0xF4) {
        count = 4;
        value = first & 0x07;
    }
    else
        return 0;
    if ((size_t) (end - at) < count)
        return 0;
    for (size_t index = 1; index < count; index++) {
        if ((at [index] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (at [index] & 0x3F);
    }
    if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)
    ||  (count == 3 && value < 0x800) || (count == 4 && value < 0x10000))
        return 0;
    return count;
}

//  Reads four hex digits at at into *value_p.
static bool
s_hex4 (const unsigned char *at, const unsigned char *end, uint32_t *value_p)
{
    if (end - at < 4)
        return false;
    uint32_t value = 0;
    for (int index = 0; index < 4; index++) {
        unsigned char c = at [index];
        value <<= 4;
        if (s_is_digit (c))
            value |= (uint32_t) (c - '0');
        else
        if (c >= 'a' && c <= 'f')
            value |= (uint32_t) (c - 'a' + 10);
        else
        if (c >= 'A' && c <= 'F')
            value |= (uint32_t) (c - 'A' + 10);
        else
            return false;
    }
    *value_p = value;
    return true;
}

//  Encodes a code point as UTF-8 into out (4 bytes of room); returns the
//  length.
static size_t
s_encode (uint32_t value, unsigned char *out)
{
    if (value < 0x80) {
        out [0] = (unsigned char) value;
        return 1;
    }
    if (value < 0x800) {
        out [0] = (unsigned char) (0xC0 | (value >> 6));
        out [1] = (unsigned char) (0x80 | (value & 0x3F));
        return 2;
    }
    if (value < 0x10000) {
        out [0] = (unsigned char) (0xE0 | (value >> 12));
        out [1] = (unsigned char) (0x80 | ((value >> 6) & 0x3F));
        out [2] = (unsigned char) (0x80 | (value & 0x3F));
        return 3;
    }
    out [0] = (unsigned char) (0xF0 | (value >> 18));
    out [1] = (unsigned char) (0x80 | ((value >> 12) & 0x3F));
    out [2] = (unsigned char) (0x80 | ((value >> 6) & 0x3F));
    out [3] = (unsigned char) (0x80 | (value & 0x3F));
    return 4;
}

//  Reads a \uXXXX escape at at (at the backslash), with the low half of a
//  surrogate pair after it: the code point in *value_p, the bytes taken
//  in *size_p. Refuses U+0000 and lone halves.
static bool
s_unicode_escape (const unsigned char *at, const unsigned char *end,
                  uint32_t *value_p, size_t *size_p)
{
    uint32_t value;
    if (!s_hex4 (at + 2, end, &value))
        return false;
    *size_p = 6;
    if (value >= 0xD800 && value <= 0xDBFF) {
        uint32_t low;
        if (end - at < 8 || at [6] != '\\' || at [7] != 'u'
        ||  !s_hex4 (at + 8, end, &low) || low < 0xDC00 || low > 0xDFFF)
            return false;
        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00);
        *size_p = 12;
    }
    else
    if (value >= 0xDC00 && value <= 0xDFFF)
        return false;
    *value_p = value;
    return value != 0;
}

//  Bytes that stand for themselves in a string: ASCII from the space up
//  but the quote and the backslash. The rest need a look (the end, an
//  escape, a control character, UTF-8).
static const bool s_plain [256] = {
    [0x20] = true, [0x21] = true, [0x23 ... 0x5B] = true, [0x5D ... 0x7F] = true
};

//  Reads the string at self->at (at its quote). A key's decoded bytes are
//  hashed into *hash_p; a value's (hash_p NULL) are only checked, which
//  most of the time is a run of plain bytes.
static bool
s_string (s_scan_t *self, uint64_t *hash_p)
{
    const unsigned char *at = self->at + 1;
    const unsigned char *end = self->end;
    uint64_t hash = S_FNV_OFFSET;
    while (true) {
        if (!hash_p)
            while (at < end && s_plain [*at])
                at++;
        if (at >= end)
            return false;
        unsigned char c = *at;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (end - at < 2)
                return false;
            unsigned char decoded;
            switch (at [1]) {
                case '"':  decoded = '"'; break;
                case '\\': decoded = '\\'; break;
                case '/':  decoded = '/'; break;
                case 'b':  decoded = '\b'; break;
                case 'f':  decoded = '\f'; break;
                case 'n':  decoded = '\n'; break;
                case 'r':  decoded = '\r'; break;
                case 't':  decoded = '\t'; break;
                case 'u': {
                    uint32_t value;
                    size_t size;
                    if (!s_unicode_escape (at, end, &value, &size))
                        return false;
                    unsigned char bytes [4];
                    size_t count = s_encode (value, bytes);
                    for (size_t index = 0; index < count; index++)
                        hash = s_hash_byte (hash, bytes [index]);
                    at += size;
                    continue;
                }
                default:
                    return false;
            }
            hash = s_hash_byte (hash, decoded);
            at += 2;
        }
        else
        if (c < 0x80) {
            hash = s_hash_byte (hash, c);
            at++;
        }
        else {
            size_t count = s_utf8 (at, end);
            if (!count)
                return false;
            for (size_t index = 0; index < count; index++)
                hash = s_hash_byte (hash, at [index]);
            at += count;
        }
    }
    self->at = at + 1;
    if (hash_p)
        *hash_p = hash;
    return true;
}

static pthread_once_t s_locale_once = PTHREAD_ONCE_INIT;
static locale_t s_c_locale;

static void
s_locale_setup (void)
{
    s_c_locale = newlocale (LC_ALL_MASK, "C", (locale_t) 0);
}

//  Whether the number text of size bytes is in range: an integer must fit
//  in 64 bits, a real must not overflow a double (it may underflow).
static bool
s_number_in_range (const unsigned char *text, size_t size, bool real)
{
    char small [64];
    char *copy = size < sizeof small? small: (char *) malloc (size + 1);
    if (!copy)
        return false;
    memcpy (copy, text, size);
    copy [size] = 0;
    bool ok;
    errno = 0;
    if (real) {
        pthread_once (&s_locale_once, s_locale_setup);
        double value = s_c_locale? strtod_l (copy, NULL, s_c_locale)
                                  : strtod (copy, NULL);
        ok = !(errno == ERANGE && (value == HUGE_VAL || value == -HUGE_VAL));
    }
    else {
        strtoll (copy, NULL, 10);
        ok = errno != ERANGE;
    }
    if (copy != small)
        free (copy);
    return ok;
}

//  Past the run of one or more digits at at; NULL if there is none.
static const unsigned char *
s_digits (const unsigned char *at, const unsigned char *end)
{
    if (at >= end || !s_is_digit (*at))
        return NULL;
    while (at < end && s_is_digit (*at))
        at++;
    return at;
}

static bool
s_number (s_scan_t *self)
{
    const unsigned char *start = self->at;
    const unsigned char *at = start;
    const unsigned char *end = self->end;
    if (*at == '-')
        at++;
    if (at >= end || !s_is_digit (*at))
        return false;
    if (*at == '0') {
        at++;
        if (at < end && s_is_digit (*at))
            return false;
    }
    else
        at = s_digits (at, end);
    bool real = false;
    if (at < end && *at == '.') {
        at = s_digits (at + 1, end);
        if (!at)
            return false;
        real = true;
    }
    if (at < end && (*at == 'e' || *at == 'E')) {
        at++;
        if (at < end && (*at == '+' || *at == '-'))
            at++;
        at = s_digits (at, end);
        if (!at)
            return false;
        real = true;
    }
    if (!s_number_in_range (start, (size_t) (at - start), real))
        return false;
    self->at = at;
    return true;
}

static bool
s_literal (s_scan_t *self)
{
    const unsigned char *start = self->at;
    const unsigned char *at = start;
    while (at < self->end && s_is_alpha (*at))
        at++;
    size_t size = (size_t) (at - start);
    if (!((size == 4 && memcmp (start, "true", 4) == 0)
       || (size == 5 && memcmp (start, "false", 5) == 0)
       || (size == 4 && memcmp (start, "null", 4) == 0)))
        return false;
    self->at = at;
    return true;
}

size_t
jscan_string (const char *value, size_t value_size, char *out,
              size_t out_max)
{
    const unsigned char *at = (const unsigned char *) value + 1;
    const unsigned char *end = (const unsigned char *) value + value_size - 1;
    size_t length = 0;
    while (at < end) {
        unsigned char bytes [4];
        size_t count = 1;
        if (*at == '\\') {
            unsigned char c = at [1];
            if (c == 'u') {
                uint32_t code;
                size_t size;
                if (!s_unicode_escape (at, end, &code, &size))
                    break;      //  Not from jscan: stop
                count = s_encode (code, bytes);
                at += size;
            }
            else {
                bytes [0] = c == 'b'? '\b': c == 'f'? '\f': c == 'n'? '\n'
                          : c == 'r'? '\r': c == 't'? '\t': c;
                at += 2;
            }
        }
        else
            bytes [0] = *at++;
        for (size_t index = 0; index < count; index++, length++)
            if (length + 1 < out_max)
                out [length] = (char) bytes [index];
    }
    if (out_max)
        out [length < out_max? length: out_max - 1] = 0;
    return length;
}

//  Whether two key tokens decode to the same bytes.
static bool
s_same_key (const s_key_t *one, const s_key_t *other)
{
    if (!memchr (one->token, '\\', one->size)
    &&  !memchr (other->token, '\\', other->size))
        return one->size == other->size
            && memcmp (one->token, other->token, one->size) == 0;
    //  A decoded key is never longer than its token.
    char *first = (char *) malloc (one->size + other->size + 2);
    if (!first)
        return true;            //  Refuses the text rather than guess
    char *second = first + one->size + 1;
    size_t first_size = jscan_string ((const char *) one->token, one->size,
                                      first, one->size + 1);
    size_t second_size = jscan_string ((const char *) other->token,
                                       other->size, second, other->size + 1);
    bool same = first_size == second_size
             && memcmp (first, second, first_size) == 0;
    free (first);
    return same;
}

//  An object's keys seen so far: keys [first ...] of the scan, and once
//  there are many, a table of their indexes by hash (index + 1, 0 free).
typedef struct {
    size_t first;
    uint32_t *table;
    size_t mask;
} s_seen_t;

static bool
s_table_insert (s_seen_t *seen, const s_key_t *keys, size_t index)
{
    size_t slot = (size_t) keys [index].hash & seen->mask;
    while (seen->table [slot]) {
        if (keys [seen->table [slot] - 1].hash == keys [index].hash
        &&  s_same_key (&keys [seen->table [slot] - 1], &keys [index]))
            return false;
        slot = (slot + 1) & seen->mask;
    }
    seen->table [slot] = (uint32_t) (index + 1);
    return true;
}

//  Adds the key just read to the object's keys; false if it was there, or
//  memory ran out.
static bool
s_key_add (s_scan_t *self, s_seen_t *seen, uint64_t hash,
           const unsigned char *token, size_t size)
{
    if (self->nkeys == self->maxkeys) {
        size_t max = self->maxkeys * 2;
        s_key_t *grown;
        if (self->keys == self->inline_keys) {
            grown = (s_key_t *) malloc (max * sizeof (s_key_t));
            if (grown)
                memcpy (grown, self->keys, self->nkeys * sizeof (s_key_t));
        }
        else
            grown = (s_key_t *) realloc (self->keys, max * sizeof (s_key_t));
        if (!grown)
            return false;
        self->keys = grown;
        self->maxkeys = max;
    }
    size_t index = self->nkeys;
    self->keys [index] = (s_key_t) { hash, token, size };
    size_t count = index - seen->first + 1;
    if (count <= S_KEYS_LINEAR) {
        for (size_t other = seen->first; other < index; other++)
            if (self->keys [other].hash == hash
            &&  s_same_key (&self->keys [other], &self->keys [index]))
                return false;
        self->nkeys++;
        return true;
    }
    //  Many keys: a table at most half full, made anew as it grows.
    if (!seen->table || count * 2 > seen->mask + 1) {
        size_t slots = 64;
        while (slots < count * 4)
            slots *= 2;
        free (seen->table);
        seen->table = (uint32_t *) calloc (slots, sizeof (uint32_t));
        if (!seen->table)
            return false;
        seen->mask = slots - 1;
        for (size_t other = seen->first; other < index; other++)
            s_table_insert (seen, self->keys, other);
    }
    if (!s_table_insert (seen, self->keys, index))
        return false;
    self->nkeys++;
    return true;
}

static bool
s_object (s_scan_t *self, jscan_member_fn *member, void *arg)
{
    s_seen_t seen = { self->nkeys, NULL, 0 };
    bool ok = false;
    self->at++;
    s_space (self);
    if (s_take (self, '}'))
        return true;
    while (self->at < self->end && *self->at == '"') {
        const unsigned char *key = self->at;
        uint64_t hash;
        if (!s_string (self, &hash))
            break;
        size_t key_size = (size_t) (self->at - key);
        if (!s_key_add (self, &seen, hash, key, key_size))
            break;
        s_space (self);
        if (!s_take (self, ':'))
            break;
        s_space (self);
        const unsigned char *value = self->at;
        jscan_kind_t kind;
        if (!s_value (self, &kind))
            break;
        if (member) {
            char name [JSCAN_KEY_MAX + 1];
            size_t name_size = jscan_string ((const char *) key, key_size,
                                             name, sizeof name);
            if (!member (arg, name, name_size, (const char *) value,
                         (size_t) (self->at - value), kind))
                break;
        }
        s_space (self);
        if (s_take (self, ',')) {
            s_space (self);
            continue;
        }
        ok = s_take (self, '}');
        break;
    }
    free (seen.table);
    self->nkeys = seen.first;
    return ok;
}

static bool
s_array (s_scan_t *self, jscan_item_fn *item, void *arg)
{
    self->at++;
    s_space (self);
    if (s_take (self, ']'))
        return true;
    while (true) {
        s_space (self);
        const unsigned char *value = self->at;
        jscan_kind_t kind;
        if (!s_value (self, &kind))
            return false;
        if (item && !item (arg, (const char *) value,
                           (size_t) (self->at - value), kind))
            return false;
        s_space (self);
        if (!s_take (self, ','))
            return s_take (self, ']');
    }
}

//  Reads the value at self->at, after white space.
static bool
s_value (s_scan_t *self, jscan_kind_t *kind_p)
{
    s_space (self);
    if (self->at >= self->end || self->depth >= self->depth_max)
        return false;
    self->depth++;
    unsigned char c = *self->at;
    bool ok;
    if (c == '{') {
        *kind_p = JSCAN_OBJECT;
        ok = s_object (self, NULL, NULL);
    }
    else
    if (c == '[') {
        *kind_p = JSCAN_ARRAY;
        ok = s_array (self, NULL, NULL);
    }
    else
    if (c == '"') {
        *kind_p = JSCAN_STRING;
        ok = s_string (self, NULL);
    }
    else
    if (c == '-' || s_is_digit (c)) {
        *kind_p = JSCAN_NUMBER;
        ok = s_number (self);
    }
    else
    if (s_is_alpha (c)) {
        *kind_p = JSCAN_LITERAL;
        ok = s_literal (self);
    }
    else
        ok = false;
    self->depth--;
    return ok;
}

static void
s_scan_init (s_scan_t *self, const char *text, size_t size)
{
    self->at = (const unsigned char *) text;
    self->end = self->at + size;
    self->depth = 0;
    self->depth_max = S_DEPTH_MAX;
    self->keys = self->inline_keys;
    self->nkeys = 0;
    self->maxkeys = S_KEYS_INLINE;
}

static size_t
s_scan_end (s_scan_t *self, const char *text, bool ok)
{
    if (self->keys != self->inline_keys)
        free (self->keys);
    return ok? (size_t) ((const char *) self->at - text): 0;
}

size_t
jscan_value (const char *text, size_t size)
{
    s_scan_t scan;
    s_scan_init (&scan, text, size);
    jscan_kind_t kind;
    bool ok = s_value (&scan, &kind);
    return s_scan_end (&scan, text, ok);
}

//  Reads the object ('{') or array ('[') that text must start with, and
//  hands its members or items over (see jscan_object and jscan_array).
static size_t
s_container (const char *text, size_t size, char open, int depth_max,
             jscan_member_fn *member, jscan_item_fn *item, void *arg)
{
    s_scan_t scan;
    s_scan_init (&scan, text, size);
    if (depth_max < S_DEPTH_MAX)
        scan.depth_max = depth_max;
    s_space (&scan);
    bool ok = scan.at < scan.end && *scan.at == open;
    if (ok) {
        scan.depth = 1;
        ok = open == '{'? s_object (&scan, member, arg)
                        : s_array (&scan, item, arg);
    }
    return s_scan_end (&scan, text, ok);
}

size_t
jscan_object (const char *text, size_t size, jscan_member_fn *member,
              void *arg)
{
    return s_container (text, size, '{', S_DEPTH_MAX, member, NULL, arg);
}

size_t
jscan_object_max (const char *text, size_t size, int depth_max,
                  jscan_member_fn *member, void *arg)
{
    return s_container (text, size, '{', depth_max, member, NULL, arg);
}

size_t
jscan_array (const char *text, size_t size, jscan_item_fn *item, void *arg)
{
    return s_container (text, size, '[', S_DEPTH_MAX, NULL, item, arg);
}
