/*  resv_cfg.c: ZPL configuration with RESV_* environment overrides.  */

#include "resv_cfg.h"
#include "resv_util.h"
#include <ctype.h>
#include <errno.h>

struct _resv_cfg_t {
    zconfig_t *root;            //  Parsed ZPL tree; NULL when no file
    char *text;                 //  The file's text; NULL when no file
    int bad;                    //  Values resv_cfg_int refused
};

//  Reads a whole file into a NUL-terminated malloc'd string; NULL with
//  errno set on failure (a directory fails with EISDIR).
static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    size_t size = 0, max = 4096;
    char *text = (char *) malloc (max);
    while (text) {
        size_t got = fread (text + size, 1, max - size - 1, file);
        size += got;
        if (got == 0)
            break;
        if (size + 1 == max) {
            char *bigger = (char *) realloc (text, max * 2);
            if (!bigger) {
                free (text);
                text = NULL;
                errno = ENOMEM;
                break;
            }
            text = bigger;
            max *= 2;
        }
    }
    if (text && ferror (file)) {
        int error = errno;
        free (text);
        text = NULL;
        errno = error;
    }
    fclose (file);
    if (text)
        text [size] = 0;
    return text;
}

resv_cfg_t *
resv_cfg_load (const char *path)
{
    resv_cfg_t *self = (resv_cfg_t *) zmalloc (sizeof (resv_cfg_t));
    if (!self)
        return NULL;
    const char *file = path? path: RESV_CFG_DEFAULT_PATH;
    if (!path && !zsys_file_exists (file))
        return self;            //  No default file: environment and defaults
    //  Read it ourselves: zconfig_load takes a directory for an empty
    //  file, and leaks when the text does not parse.
    char *text = s_read_file (file);
    if (!text) {
        zsys_error ("config: cannot read '%s': %s", file, strerror (errno));
        free (self);
        return NULL;
    }
    self->root = zconfig_str_load (text);
    if (!self->root) {
        zsys_error ("config: cannot parse '%s': not valid ZPL", file);
        free (text);
        free (self);
        return NULL;
    }
    self->text = text;
    return self;
}

const char *
resv_cfg_text (resv_cfg_t *self)
{
    assert (self);
    //  No file: a comment, since an empty file is not ZPL that loads.
    return self->text? self->text:
        "#   No configuration file: defaults and environment only.\n";
}

//  Whether path is one of known.
static bool
s_known (const char *path, const char *const *known)
{
    for (; *known; known++)
        if (streq (path, *known))
            return true;
    return false;
}

//  Looks at the keys under node, whose path is prefix (of length at most
//  size - 1 in a buffer of size), for resv_cfg_unknown. Returns how many
//  it logged.
static int
s_unknown_under (zconfig_t *node, char *prefix, size_t size,
                 const char *const *known)
{
    int found = 0;
    size_t length = strlen (prefix);
    for (zconfig_t *child = zconfig_child (node); child;
         child = zconfig_next (child)) {
        const char *name = zconfig_name (child);
        if (!name)
            continue;
        if (strchr (name, '/')) {
            //  Read as one name, not as a path: no key has it.
            zsys_warning ("config: %s%s: a name with '/' is no key; give "
                          "each section a line of its own", prefix, name);
            found++;
            continue;
        }
        for (zconfig_t *before = zconfig_child (node); before != child;
             before = zconfig_next (before))
            if (zconfig_name (before) && streq (zconfig_name (before), name)) {
                zsys_warning ("config: %s%s is given twice; the first is used",
                              prefix, name);
                found++;
                break;
            }
        if (snprintf (prefix + length, size - length, "%s", name)
            >= (int) (size - length)) {
            zsys_warning ("config: %s...: a path too long to be a key",
                          prefix);
            prefix [length] = 0;
            found++;
            continue;
        }
        if (zconfig_child (child)) {
            size_t end = strlen (prefix);
            if (end + 1 < size) {
                prefix [end] = '/';
                prefix [end + 1] = 0;
                found += s_unknown_under (child, prefix, size, known);
            }
        }
        else
        if (!s_known (prefix, known)) {
            zsys_warning ("config: %s is not a key resv reads; it is left "
                          "unused (misspelt, or in the wrong section?)",
                          prefix);
            found++;
        }
        prefix [length] = 0;
    }
    return found;
}

int
resv_cfg_unknown (resv_cfg_t *self, const char *const *known)
{
    if (!self || !self->root)
        return 0;
    char prefix [256] = "";
    return s_unknown_under (self->root, prefix, sizeof prefix, known);
}

void
resv_cfg_destroy (resv_cfg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    resv_cfg_t *self = *self_p;
    zconfig_destroy (&self->root);
    free (self->text);
    free (self);
    *self_p = NULL;
}

char *
resv_cfg_env_name (const char *key, char *buf, size_t size)
{
    size_t len = strlen (key);
    if (len + 6 > size)
        return NULL;
    memcpy (buf, "RESV_", 5);
    for (size_t i = 0; i < len; i++) {
        char c = key [i];
        buf [5 + i] = (c == '/' || c == '-')? '_': (char) toupper ((unsigned char) c);
    }
    buf [5 + len] = 0;
    return buf;
}

const char *
resv_cfg_str (resv_cfg_t *self, const char *key, const char *dflt)
{
    char name [256];
    if (resv_cfg_env_name (key, name, sizeof name)) {
        const char *value = getenv (name);
        if (value && *value)
            return value;
    }
    if (self && self->root) {
        //  zconfig_get returns the default for a missing key; "" for a key
        //  with no value, which we treat as unset.
        const char *value = zconfig_get (self->root, key, NULL);
        if (value && *value)
            return value;
    }
    return dflt;
}

int64_t
resv_cfg_int (resv_cfg_t *self, const char *key, int64_t dflt,
              int64_t min, int64_t max)
{
    const char *text = resv_cfg_str (self, key, NULL);
    if (!text)
        return dflt;
    int64_t value;
    if (resv_parse_int (text, min, max, &value)) {
        zsys_error ("config: %s: '%s' is not a whole number from %lld to %lld",
                    key, text, (long long) min, (long long) max);
        if (self)
            self->bad++;
        return dflt;
    }
    return value;
}

int
resv_cfg_bad (resv_cfg_t *self)
{
    return self? self->bad: 0;
}

bool
resv_cfg_refused (resv_cfg_t *self, const char *who)
{
    int bad = resv_cfg_bad (self);
    if (bad)
        zsys_error ("%s: not starting: its configuration has %d bad value%s "
                    "(above)", who, bad, bad == 1? "": "s");
    return bad > 0;
}

void
resv_cfg_refuse (resv_cfg_t *self)
{
    if (self)
        self->bad++;
}
