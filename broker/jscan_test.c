/*  jscan_test.c: jscan (jscan.h) against jansson itself. Every text here,
    written by hand or generated, must be accepted by jscan exactly when
    json_loadb accepts it with the broker's flags, and found to be the same
    length.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <jansson.h>
#include "jscan.h"

#define S_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK \
                 | JSON_REJECT_DUPLICATES)

//  Compares jscan with jansson on size bytes at text; fails the test,
//  showing the text, if they differ.
static void
s_compare (const char *text, size_t size)
{
    json_error_t error;
    json_t *parsed = json_loadb (text, size, S_FLAGS, &error);
    size_t scanned = jscan_value (text, size);
    size_t expected = parsed? (size_t) error.position: 0;
    json_decref (parsed);
    if (scanned != expected) {
        char shown [400];
        size_t used = 0;
        for (size_t index = 0; index < size && used + 8 < sizeof shown; index++) {
            unsigned char c = (unsigned char) text [index];
            used += (size_t) snprintf (shown + used, sizeof shown - used,
                                       c >= 0x20 && c < 0x7F? "%c": "\\x%02x", c);
        }
        fail_msg ("jscan %zu, jansson %zu (%s) on [%s]", scanned, expected,
                  parsed? "accepted": error.text, shown);
    }
}

#define S_COMPARE(literal) s_compare (literal, sizeof (literal) - 1)

static void
test_written_cases (void **state)
{
    (void) state;
    //  Syntax.
    S_COMPARE ("{}");
    S_COMPARE ("  {\"a\":1}  ");
    S_COMPARE ("{\"a\":1,}");
    S_COMPARE ("{,\"a\":1}");
    S_COMPARE ("{\"a\" 1}");
    S_COMPARE ("{\"a\":}");
    S_COMPARE ("{a:1}");
    S_COMPARE ("{\"a\":1");
    S_COMPARE ("[1,2,[3,{}],\"x\",true,false,null]");
    S_COMPARE ("[1,]");
    S_COMPARE ("[,1]");
    S_COMPARE ("[1 2]");
    S_COMPARE ("[]]");
    S_COMPARE ("{}}");
    S_COMPARE ("{} {}");
    S_COMPARE ("");
    S_COMPARE ("   ");
    S_COMPARE ("\t\r\n[\t\r\n1\t\r\n]");
    S_COMPARE ("[\f1]");
    S_COMPARE ("[\v1]");
    //  Literals.
    S_COMPARE ("true");
    S_COMPARE ("[true,false,null]");
    S_COMPARE ("[tru]");
    S_COMPARE ("[truex]");
    S_COMPARE ("[True]");
    S_COMPARE ("[nulll]");
    S_COMPARE ("[null1]");
    //  Numbers.
    S_COMPARE ("[0,-0,1,-1,10,1.5,-1.5,1e5,1E5,1e+5,1e-5,0.0,0e0]");
    S_COMPARE ("[01]");
    S_COMPARE ("[-01]");
    S_COMPARE ("[00]");
    S_COMPARE ("[1.]");
    S_COMPARE ("[.5]");
    S_COMPARE ("[+1]");
    S_COMPARE ("[-]");
    S_COMPARE ("[1e]");
    S_COMPARE ("[1e+]");
    S_COMPARE ("[1.e5]");
    S_COMPARE ("[--1]");
    S_COMPARE ("[9223372036854775807]");
    S_COMPARE ("[9223372036854775808]");
    S_COMPARE ("[-9223372036854775808]");
    S_COMPARE ("[-9223372036854775809]");
    S_COMPARE ("[123456789012345678901234567890]");
    S_COMPARE ("[1e308]");
    S_COMPARE ("[1e309]");
    S_COMPARE ("[-1e309]");
    S_COMPARE ("[1e-400]");
    S_COMPARE ("[0.0000000000000000000000000000000000000001e-330]");
    S_COMPARE ("[179769313486231570000000000000000000000000000000000000000000000"
               "000000000000000000000000000000000000000000000000000000000000000"
               "000000000000000000000000000000000000000000000000000000000000000"
               "000000000000000000000000000000000000000000000000000000000000000"
               "000000000000000000000000000000000000000000000000000000000000000"
               "0000000000.0]");
    S_COMPARE ("1");
    S_COMPARE ("12 ");
    S_COMPARE ("-");
    //  Strings and escapes.
    S_COMPARE ("[\"\"]");
    S_COMPARE ("[\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"]");
    S_COMPARE ("[\"\\x\"]");
    S_COMPARE ("[\"\\u0041\\u00e9\\u20AC\"]");
    S_COMPARE ("[\"\\u004\"]");
    S_COMPARE ("[\"\\u004g\"]");
    S_COMPARE ("[\"\\u0000\"]");
    S_COMPARE ("{\"\\u0000\":1}");
    S_COMPARE ("[\"\\ud83d\\ude00\"]");
    S_COMPARE ("[\"\\ud83d\"]");
    S_COMPARE ("[\"\\ud83dx\"]");
    S_COMPARE ("[\"\\ud83d\\n\"]");
    S_COMPARE ("[\"\\ud83d\\u0041\"]");
    S_COMPARE ("[\"\\ude00\"]");
    S_COMPARE ("[\"\\ude00\\ud83d\"]");
    S_COMPARE ("[\"tab\there\"]");
    S_COMPARE ("[\"\x1f\"]");
    S_COMPARE ("[\" ~\"]");
    S_COMPARE ("[\"new\nline\"]");
    S_COMPARE ("[\"\x7f\"]");
    S_COMPARE ("[\"unterminated]");
    s_compare ("[\"nul\0byte\"]", 11);
    s_compare ("[1]\0", 4);
    s_compare ("\0[1]", 4);
    //  UTF-8.
    S_COMPARE ("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]");
    S_COMPARE ("[\"\xc3\"]");
    S_COMPARE ("[\"\xc3\xc3\"]");
    S_COMPARE ("[\"\xc0\x80\"]");
    S_COMPARE ("[\"\xc1\xbf\"]");
    S_COMPARE ("[\"\xe0\x80\x80\"]");
    S_COMPARE ("[\"\xe0\x9f\xbf\"]");
    S_COMPARE ("[\"\xed\xa0\x80\"]");
    S_COMPARE ("[\"\xed\x9f\xbf\"]");
    S_COMPARE ("[\"\xf0\x80\x80\x80\"]");
    S_COMPARE ("[\"\xf4\x8f\xbf\xbf\"]");
    S_COMPARE ("[\"\xf4\x90\x80\x80\"]");
    S_COMPARE ("[\"\xf5\x80\x80\x80\"]");
    S_COMPARE ("[\"\xff\"]");
    S_COMPARE ("[\"\x80\"]");
    S_COMPARE ("[\xc3\xa9]");
    S_COMPARE ("{\"\xc3\xa9\":1}");
    S_COMPARE ("{\"a\":1}\xff");
    //  Duplicate keys, as decoded, at any depth.
    S_COMPARE ("{\"a\":1,\"a\":2}");
    S_COMPARE ("{\"a\":1,\"b\":2,\"A\":3}");
    S_COMPARE ("{\"a\":1,\"\\u0061\":2}");
    S_COMPARE ("{\"\\/\":1,\"/\":2}");
    S_COMPARE ("{\"\xc3\xa9\":1,\"\\u00e9\":2}");
    S_COMPARE ("{\"x\":{\"a\":1,\"a\":2}}");
    S_COMPARE ("[{\"a\":1},{\"a\":1}]");
    S_COMPARE ("{\"a\":{\"a\":{\"a\":1}}}");
    S_COMPARE ("{\"\":1,\"\":2}");
    //  Every byte inside a value's string (read in runs of plain bytes)
    //  and a key's (hashed byte by byte), after and before plain ones.
    for (int byte = 0; byte < 256; byte++) {
        char text [16];
        int size = snprintf (text, sizeof text, "[\"ab%ccd\"]", byte ? byte : 'x');
        text [4] = (char) byte;
        s_compare (text, (size_t) size);
        size = snprintf (text, sizeof text, "{\"ab%ccd\":1}", byte ? byte : 'x');
        text [4] = (char) byte;
        s_compare (text, (size_t) size);
    }
}

static void
test_depth (void **state)
{
    (void) state;
    //  Around jansson's limit of nesting: arrays, empty or with a value
    //  inside (one level more), and objects.
    int depths [] = { 2046, 2047, 2048, 2049, 2050 };
    for (size_t index = 0; index < sizeof depths / sizeof depths [0]; index++) {
        int depth = depths [index];
        char *text = (char *) malloc ((size_t) depth * 6 + 16);
        for (int inner = 0; inner < 2; inner++) {
            size_t used = 0;
            for (int level = 0; level < depth; level++)
                text [used++] = '[';
            if (inner)
                text [used++] = '1';
            for (int level = 0; level < depth; level++)
                text [used++] = ']';
            s_compare (text, used);
        }
        size_t used = 0;
        for (int level = 1; level < depth; level++)
            used += (size_t) sprintf (text + used, "{\"k\":");
        used += (size_t) sprintf (text + used, "{}");
        for (int level = 1; level < depth; level++)
            text [used++] = '}';
        s_compare (text, used);
        free (text);
    }
}

//  jscan_object_max takes a text of depth_max levels, and refuses one
//  level more; past jansson's 2048 it is jscan_object.
static void
test_object_max (void **state)
{
    (void) state;
    const char text [] = "{\"a\":[[1]],\"b\":{}}";      //  1 at level 4
    size_t size = sizeof text - 1;
    assert_int_equal (jscan_object_max (text, size, 4, NULL, NULL), size);
    assert_int_equal (jscan_object_max (text, size, 3, NULL, NULL), 0);
    assert_int_equal (jscan_object_max ("{}", 2, 1, NULL, NULL), 2);
    assert_int_equal (jscan_object_max ("{\"a\":1}", 7, 1, NULL, NULL), 0);
    char *deep = (char *) malloc (2049 * 6 + 16);
    size_t used = 0;
    for (int level = 1; level < 2049; level++)
        used += (size_t) sprintf (deep + used, "{\"k\":");
    used += (size_t) sprintf (deep + used, "{}");
    for (int level = 1; level < 2049; level++)
        deep [used++] = '}';
    assert_int_equal (jscan_object_max (deep, used, 100000, NULL, NULL), 0);
    assert_int_equal (jscan_object_max (deep + 5, used - 6, 100000, NULL, NULL),
                      used - 6);
    free (deep);
}

static void
test_many_keys (void **state)
{
    (void) state;
    //  Objects large enough to be checked through the table.
    int counts [] = { 31, 32, 33, 100, 5000 };
    for (size_t index = 0; index < sizeof counts / sizeof counts [0]; index++) {
        int count = counts [index];
        char *text = (char *) malloc ((size_t) count * 24 + 64);
        for (int twice = 0; twice < 4; twice++) {
            size_t used = 0;
            text [used++] = '{';
            for (int key = 0; key < count; key++)
                used += (size_t) sprintf (text + used, "%s\"k%d\":%d",
                                          key? ",": "", key, key);
            //  0: all distinct; 1: the first key again at the end; 2: a
            //  key in the middle, escaped; 3: a near miss.
            if (twice == 1)
                used += (size_t) sprintf (text + used, ",\"k0\":0");
            if (twice == 2)
                used += (size_t) sprintf (text + used, ",\"\\u006b%d\":0",
                                          count / 2);
            if (twice == 3)
                used += (size_t) sprintf (text + used, ",\"k%d\":0", count);
            text [used++] = '}';
            s_compare (text, used);
        }
        free (text);
    }
}

//  A small generator of JSON-like text: valid values, often broken by a
//  mutation, from a fixed seed so that a failure repeats.
static uint64_t s_seed = 88172645463325252ULL;

static uint32_t
s_random (uint32_t below)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t) (s_seed % below);
}

static const char *s_pieces [] = {
    "0", "-0", "1", "-1", "12", "1.5", "-2.25e3", "1e400", "-1e400",
    "1e-400", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "01", "1.", ".1", "-",
    "true", "false", "null", "nul", "truth", "\"\"", "\"a\"", "\"\\u0000\"",
    "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\udc00\"", "\"\\u00e9\"",
    "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\\/\"",
    "\"\\q\"", "\"\t\"", "\"\\t\"", "\"\xf4\x90\x80\x80\"", "{}", "[]"
};
static const char *s_keys [] = {
    "\"a\"", "\"b\"", "\"\\u0061\"", "\"id\"", "\"type\"", "\"\"",
    "\"\\u00e9\"", "\"\xc3\xa9\"", "\"a\\u0000\"", "\"\\ud800\""
};
static const char s_noise [] = "{}[],:\"\\ -+.eE0123456789tfnu\x80\xc3\xff\t\n";

static void
s_generate (char *text, size_t *used, size_t max, int depth)
{
    if (*used + 64 > max)
        return;
    uint32_t choice = depth > 6? 2: s_random (5);
    if (choice == 0) {
        text [(*used)++] = '{';
        uint32_t members = s_random (5);
        for (uint32_t member = 0; member < members && *used + 64 < max; member++) {
            if (member)
                text [(*used)++] = ',';
            const char *key = s_keys [s_random (sizeof s_keys / sizeof s_keys [0])];
            *used += (size_t) sprintf (text + *used, "%s%s:", key,
                                       s_random (4)? "": " ");
            s_generate (text, used, max, depth + 1);
        }
        text [(*used)++] = '}';
    }
    else
    if (choice == 1) {
        text [(*used)++] = '[';
        uint32_t items = s_random (5);
        for (uint32_t item = 0; item < items && *used + 64 < max; item++) {
            if (item)
                text [(*used)++] = ',';
            s_generate (text, used, max, depth + 1);
        }
        text [(*used)++] = ']';
    }
    else {
        const char *piece = s_pieces [s_random (sizeof s_pieces / sizeof s_pieces [0])];
        *used += (size_t) sprintf (text + *used, "%s", piece);
    }
}

static void
test_generated (void **state)
{
    (void) state;
    char text [4096];
    for (int round = 0; round < 200000; round++) {
        size_t used = 0;
        s_generate (text, &used, sizeof text - 8, 0);
        //  Half stay as made; the others lose, gain or change a byte.
        uint32_t mutations = s_random (2)? 0: 1 + s_random (3);
        for (uint32_t mutation = 0; mutation < mutations && used > 0; mutation++) {
            size_t at = s_random ((uint32_t) used);
            uint32_t kind = s_random (3);
            if (kind == 0) {
                memmove (text + at, text + at + 1, used - at - 1);
                used--;
            }
            else
            if (kind == 1 && used + 1 < sizeof text) {
                memmove (text + at + 1, text + at, used - at);
                text [at] = s_noise [s_random (sizeof s_noise - 1)];
                used++;
            }
            else
                text [at] = s_noise [s_random (sizeof s_noise - 1)];
        }
        s_compare (text, used);
    }
}

typedef struct {
    char keys [8][32];
    jscan_kind_t kinds [8];
    char values [8][64];
    int count;
    int stop_at;
} s_members_t;

static bool
s_member (void *arg, const char *key, size_t key_size, const char *value,
          size_t value_size, jscan_kind_t kind)
{
    s_members_t *self = (s_members_t *) arg;
    assert_int_equal (strlen (key), key_size);
    if (self->count == self->stop_at)
        return false;
    snprintf (self->keys [self->count], 32, "%s", key);
    snprintf (self->values [self->count], 64, "%.*s", (int) value_size, value);
    self->kinds [self->count++] = kind;
    return true;
}

static void
test_object_members (void **state)
{
    (void) state;
    const char text [] = " {\"id\" : \"e1\", \"t\\u00e9\":[1,{\"x\":2}],"
                         "\"data\":{\"a\":\"b\"},\"n\":-1.5e3,\"z\":null} tail";
    s_members_t members = { .stop_at = -1 };
    size_t size = jscan_object (text, sizeof text - 1, s_member, &members);
    assert_int_equal (size, sizeof text - 1 - strlen (" tail"));
    assert_int_equal (members.count, 5);
    assert_string_equal (members.keys [0], "id");
    assert_string_equal (members.values [0], "\"e1\"");
    assert_int_equal (members.kinds [0], JSCAN_STRING);
    assert_string_equal (members.keys [1], "t\xc3\xa9");
    assert_string_equal (members.values [1], "[1,{\"x\":2}]");
    assert_int_equal (members.kinds [1], JSCAN_ARRAY);
    assert_string_equal (members.values [2], "{\"a\":\"b\"}");
    assert_int_equal (members.kinds [2], JSCAN_OBJECT);
    assert_int_equal (members.kinds [3], JSCAN_NUMBER);
    assert_int_equal (members.kinds [4], JSCAN_LITERAL);
    //  A member refused stops the scan, which fails.
    members = (s_members_t) { .stop_at = 2 };
    assert_int_equal (jscan_object (text, sizeof text - 1, s_member, &members), 0);
    //  Only objects.
    assert_int_equal (jscan_object ("[1]", 3, NULL, NULL), 0);
    assert_int_equal (jscan_object ("\"x\"", 3, NULL, NULL), 0);
    assert_int_equal (jscan_object ("{\"a\":1,\"a\":1}", 13, NULL, NULL), 0);
    assert_int_equal (jscan_object ("{}", 2, NULL, NULL), 2);

    //  Strings decode as jansson decodes them, cut to the room given.
    char out [16];
    const char escaped [] = "\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"";
    assert_int_equal (jscan_string (escaped, sizeof escaped - 1, out, sizeof out),
                      15);
    assert_memory_equal (out, "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80", 15);
    assert_int_equal (out [15], 0);
    assert_int_equal (jscan_string (escaped, sizeof escaped - 1, out, 4), 15);
    assert_string_equal (out, "a\"\\");
}

//  jscan_array hands over each item as it is in the text.
typedef struct {
    char items [8][64];
    jscan_kind_t kinds [8];
    int count;
    int stop_at;
} s_items_t;

static bool
s_item (void *arg, const char *value, size_t value_size, jscan_kind_t kind)
{
    s_items_t *self = (s_items_t *) arg;
    if (self->count == self->stop_at)
        return false;
    snprintf (self->items [self->count], 64, "%.*s", (int) value_size, value);
    self->kinds [self->count++] = kind;
    return true;
}

static void
test_array_items (void **state)
{
    (void) state;
    const char text [] = " [ {\"a\" : [1, 2]} ,\"x\\\"\", [] ,-0.5,true ] tail";
    s_items_t items = { .stop_at = -1 };
    size_t size = jscan_array (text, sizeof text - 1, s_item, &items);
    assert_int_equal (size, sizeof text - 1 - strlen (" tail"));
    assert_int_equal (items.count, 5);
    assert_string_equal (items.items [0], "{\"a\" : [1, 2]}");
    assert_int_equal (items.kinds [0], JSCAN_OBJECT);
    assert_string_equal (items.items [1], "\"x\\\"\"");
    assert_int_equal (items.kinds [1], JSCAN_STRING);
    assert_string_equal (items.items [2], "[]");
    assert_int_equal (items.kinds [2], JSCAN_ARRAY);
    assert_string_equal (items.items [3], "-0.5");
    assert_int_equal (items.kinds [3], JSCAN_NUMBER);
    assert_string_equal (items.items [4], "true");
    assert_int_equal (items.kinds [4], JSCAN_LITERAL);
    //  An item refused stops the scan, which fails.
    items = (s_items_t) { .stop_at = 1 };
    assert_int_equal (jscan_array (text, sizeof text - 1, s_item, &items), 0);
    //  Only valid arrays; the empty one calls nothing.
    items = (s_items_t) { .stop_at = -1 };
    assert_int_equal (jscan_array ("[]", 2, s_item, &items), 2);
    assert_int_equal (items.count, 0);
    assert_int_equal (jscan_array ("{}", 2, NULL, NULL), 0);
    assert_int_equal (jscan_array ("[1,]", 4, NULL, NULL), 0);
    assert_int_equal (jscan_array ("[1 2]", 5, NULL, NULL), 0);
    assert_int_equal (jscan_array ("[{\"a\":1,\"a\":2}]", 17, NULL, NULL), 0);
    assert_int_equal (jscan_array ("[1", 2, NULL, NULL), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_written_cases),
        cmocka_unit_test (test_depth),
        cmocka_unit_test (test_object_max),
        cmocka_unit_test (test_many_keys),
        cmocka_unit_test (test_generated),
        cmocka_unit_test (test_object_members),
        cmocka_unit_test (test_array_items),
    };
    return cmocka_run_group_tests_name ("jscan", tests, NULL, NULL);
}
