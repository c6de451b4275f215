/*  resv_main.c: resv, the command line client of resv (spec section 5).

    Each command is a row of s_commands: its words, its arguments and a
    function that calls libresv with them. Arguments are parsed into a JSON
    object keyed as the request bodies are (resv_proto.h), so most commands
    pass it on as it is. Output: one compact JSON document on stdout (the
    reply, or the error object; events --follow prints one per event), help
    on stdout for --help and on stderr with a usage error. Exit status: 0
    success, 1 refused, 2 usage error, 3 unavailable or failed.
*/

#include "resv.h"
#include "resv_cfg.h"
#include "resv_util.h"
#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#define S_EXIT_OK           0
#define S_EXIT_REFUSED      1
#define S_EXIT_USAGE        2
#define S_EXIT_FAILED       3

//  Longest deadline -t accepts: one day. The broker cuts it further to
//  broker/max_timeout.
#define S_TIMEOUT_MAX       86400000
//  Largest count, limit and such a command accepts; services apply their
//  own, smaller limits.
#define S_INT_MAX           2147483647
//  events --follow reads pages of this many events, and when it is caught
//  up, looks again after this many milliseconds.
#define S_FOLLOW_PAGE       500
#define S_FOLLOW_POLL       200
//  A follower whose read failed for a while (broker restarting, journal
//  busy) reads again after S_FOLLOW_POLL ms, doubling up to this.
#define S_FOLLOW_BACKOFF    2000
//  A number defined by a macro, as text in a help string.
#define S_TEXT(number)      S_TEXT_OF (number)
#define S_TEXT_OF(number)   #number

typedef enum {
    S_STR,                      //  A string, sent as it is
    S_INT,                      //  A whole number in [min, max]
    S_LIST,                     //  Comma-separated, non-empty strings
    S_CHOICE,                   //  One of the words of choices
    S_JSON,                     //  A JSON document
    S_FLAG                      //  No value; true when given
} s_kind_t;

//  One option (--name VALUE) or positional argument (NAME) of a command.
typedef struct {
    const char *name;           //  "--units", or "ID" for a positional
    const char *key;            //  Key in the parsed arguments
    s_kind_t kind;              //  How the value is checked and stored
    bool required;              //  Must be given
    int64_t min;                //  S_INT: smallest value
    int64_t max;                //  S_INT: largest value
    const char *choices;        //  S_CHOICE: words separated by '|'
} s_arg_t;

//  Runs a command with its parsed arguments (borrowed); returns the status
//  and the reply as libresv does.
typedef int (s_run_fn) (resv_t *client, json_t *args, json_t **reply_p);

typedef struct {
    const char *group;          //  First word of a two-word command, or NULL
    const char *name;           //  The command (or subcommand) word
    const s_arg_t *positionals; //  Ends with a row whose name is NULL
    const s_arg_t *options;     //  Ends with a row whose name is NULL
    s_run_fn *run;              //  Calls libresv
    const char *help;           //  Usage line and description
} s_command_t;

//  Options that come before the command (and are also taken after it).
typedef struct {
    const char *endpoint;       //  -e; NULL: from the environment or config
    const char *config;         //  -c; NULL: the default file, if any
    int timeout;                //  -t; 0: from the configuration
} s_globals_t;


//  --------------------------------------------------------------------------
//  Helpers for the run functions

static const char *
s_str (json_t *args, const char *key)
{
    return json_string_value (json_object_get (args, key));
}

static int64_t
s_int (json_t *args, const char *key)
{
    return json_integer_value (json_object_get (args, key));
}


//  --------------------------------------------------------------------------
//  Commands

#define S_END       { NULL, NULL, S_STR, false, 0, 0, NULL }
#define S_ID        { "ID", "id", S_STR, true, 0, 0, NULL }

static const s_arg_t s_none [] = { S_END };
static const s_arg_t s_id_only [] = { S_ID, S_END };

//  resource add
static const s_arg_t s_resource_add_opts [] = {
    { "--name", "name", S_STR, true, 0, 0, NULL },
    { "--owner", "owner", S_STR, true, 0, 0, NULL },
    { "--kind", "kind", S_STR, false, 0, 0, NULL },
    { "--capacity", "capacity", S_INT, false, 1, S_INT_MAX, NULL },
    { "--price", "price", S_INT, false, 0, S_INT_MAX, NULL },
    { "--approval", "approval", S_CHOICE, false, 0, 0, "auto|manual" },
    { "--slots", "slots", S_LIST, false, 0, 0, NULL },
    S_END
};

static int
s_run_resource_add (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_resource_add (client, args, reply_p);
}

//  A page's size and where it starts, for the commands that list; like
//  every count, the service bounds the limit (RESV_PAGE_MAX).
#define S_LIMIT     { "--limit", "limit", S_INT, false, 1, S_INT_MAX, NULL }
#define S_AFTER     { "--after", "after", S_STR, false, 0, 0, NULL }

//  resource list
static const s_arg_t s_resource_list_opts [] = {
    { "--owner", "owner", S_STR, false, 0, 0, NULL },
    { "--kind", "kind", S_STR, false, 0, 0, NULL },
    S_LIMIT,
    S_AFTER,
    S_END
};

static int
s_run_resource_list (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_resource_query (client, args, reply_p);
}

//  resource show
static int
s_run_resource_show (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_resource_show (client, s_str (args, "id"), reply_p);
}

//  resource update
static const s_arg_t s_resource_update_opts [] = {
    { "--owner", "owner", S_STR, true, 0, 0, NULL },
    { "--name", "name", S_STR, false, 0, 0, NULL },
    { "--kind", "kind", S_STR, false, 0, 0, NULL },
    { "--capacity", "capacity", S_INT, false, 1, S_INT_MAX, NULL },
    { "--price", "price", S_INT, false, 0, S_INT_MAX, NULL },
    { "--approval", "approval", S_CHOICE, false, 0, 0, "auto|manual" },
    { "--slots", "slots", S_LIST, false, 0, 0, NULL },
    S_END
};

static int
s_run_resource_update (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_resource_update (client, s_str (args, "id"),
                                 s_str (args, "owner"), args, reply_p);
}

//  resource remove
static const s_arg_t s_owner_opts [] = {
    { "--owner", "owner", S_STR, true, 0, 0, NULL },
    S_END
};

static int
s_run_resource_remove (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_resource_remove (client, s_str (args, "id"),
                                 s_str (args, "owner"), reply_p);
}

//  availability
static const s_arg_t s_availability_opts [] = {
    { "--resource", "resource", S_STR, true, 0, 0, NULL },
    { "--date", "date", S_STR, true, 0, 0, NULL },
    { "--days", "days", S_INT, false, 1, S_INT_MAX, NULL },
    S_END
};

static int
s_run_availability (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_availability (client, s_str (args, "resource"),
                              s_str (args, "date"),
                              (int) s_int (args, "days"), reply_p);
}

//  reserve
static const s_arg_t s_reserve_opts [] = {
    { "--customer", "customer", S_STR, true, 0, 0, NULL },
    { "--resource", "resource", S_STR, true, 0, 0, NULL },
    { "--date", "date", S_STR, true, 0, 0, NULL },
    { "--days", "days", S_INT, false, 1, S_INT_MAX, NULL },
    { "--slot", "slot", S_STR, false, 0, 0, NULL },
    { "--units", "units", S_INT, false, 1, S_INT_MAX, NULL },
    { "--request-id", "request_id", S_STR, false, 0, 0, NULL },
    S_END
};

static int
s_run_reserve (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_reserve (client, args, reply_p);
}

//  cancel
static const s_arg_t s_customer_opts [] = {
    { "--customer", "customer", S_STR, true, 0, 0, NULL },
    S_END
};

static int
s_run_cancel (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_cancel (client, s_str (args, "id"), s_str (args, "customer"),
                        reply_p);
}

//  approve
static int
s_run_approve (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_approve (client, s_str (args, "id"), s_str (args, "owner"),
                         reply_p);
}

//  decline
static const s_arg_t s_decline_opts [] = {
    { "--owner", "owner", S_STR, true, 0, 0, NULL },
    { "--reason", "reason", S_STR, false, 0, 0, NULL },
    S_END
};

static int
s_run_decline (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_decline (client, s_str (args, "id"), s_str (args, "owner"),
                         s_str (args, "reason"), reply_p);
}

//  status
static int
s_run_status (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_status (client, s_str (args, "id"), reply_p);
}

//  list
static const s_arg_t s_list_opts [] = {
    { "--customer", "customer", S_STR, false, 0, 0, NULL },
    { "--resource", "resource", S_STR, false, 0, 0, NULL },
    { "--status", "status", S_STR, false, 0, 0, NULL },
    S_LIMIT,
    S_AFTER,
    S_END
};

static int
s_run_list (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_list (client, args, reply_p);
}

//  history
static int
s_run_history (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_history (client, s_str (args, "id"), reply_p);
}

//  view rebuild
static int
s_run_view_rebuild (resv_t *client, json_t *args, json_t **reply_p)
{
    (void) args;
    return resv_view_rebuild (client, reply_p);
}

//  notifications
static const s_arg_t s_notifications_opts [] = {
    { "--customer", "customer", S_STR, true, 0, 0, NULL },
    S_LIMIT,
    S_AFTER,
    S_END
};

static int
s_run_notifications (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_notifications_query (client, args, reply_p);
}

//  events
static const s_arg_t s_events_opts [] = {
    { "--from", "from", S_INT, false, 0, INT64_MAX, NULL },
    { "--type", "type", S_STR, false, 0, 0, NULL },
    S_LIMIT,
    { "--follow", "follow", S_FLAG, false, 0, 0, NULL },
    S_END
};

//  The journal's page says where the next one starts ("next") and which
//  seq is the newest ("last"). Printed, "next" stays only when the page
//  was cut, as on every other list, so that a script reading pages while
//  "next" is there stops at the end.
static int
s_run_events (resv_t *client, json_t *args, json_t **reply_p)
{
    int status = resv_events (client, s_int (args, "from"),
                              s_str (args, "type"),
                              (int) s_int (args, "limit"), reply_p);
    if (status == RESV_OK) {
        json_t *next = json_object_get (*reply_p, "next");
        json_t *last = json_object_get (*reply_p, "last");
        if (json_is_integer (next) && json_is_integer (last)
        &&  json_integer_value (next) > json_integer_value (last))
            json_object_del (*reply_p, "next");
    }
    return status;
}

//  stats, ping
static int
s_run_stats (resv_t *client, json_t *args, json_t **reply_p)
{
    (void) args;
    return resv_stats (client, reply_p);
}

static int
s_run_ping (resv_t *client, json_t *args, json_t **reply_p)
{
    (void) args;
    return resv_ping (client, reply_p);
}

//  scale
static const s_arg_t s_scale_args [] = {
    { "SERVICE", "service", S_STR, true, 0, 0, NULL },
    { "N", "count", S_INT, true, 0, RESV_SCALE_MAX, NULL },
    S_END
};

static int
s_run_scale (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_scale (client, s_str (args, "service"),
                       (int) s_int (args, "count"), reply_p);
}

//  call
static const s_arg_t s_call_args [] = {
    { "SERVICE", "service", S_STR, true, 0, 0, NULL },
    { "METHOD", "method", S_STR, true, 0, 0, NULL },
    { "JSON", "body", S_JSON, false, 0, 0, NULL },
    S_END
};

static int
s_run_call (resv_t *client, json_t *args, json_t **reply_p)
{
    return resv_call (client, s_str (args, "service"), s_str (args, "method"),
                      json_object_get (args, "body"), 0, reply_p);
}

static const char *s_help_main =
"usage: resv [-e ENDPOINT] [-t TIMEOUT_MS] [-c CONFIG] COMMAND [ARGS]\n"
"\n"
"The command line client of resv, the reservation service.\n"
"\n"
"Commands:\n"
"  resource add|list|show|update|remove   manage bookable resources\n"
"  availability    capacity of a resource from a date\n"
"  reserve         reserve a resource\n"
"  cancel          cancel a reservation (its customer)\n"
"  approve         approve a pending reservation (the resource's owner)\n"
"  decline         decline a pending reservation (the resource's owner)\n"
"  status          one reservation, from the view store\n"
"  list            list reservations, from the view store\n"
"  history         the events of a reservation, in order\n"
"  view rebuild    replay the journal into a fresh view store\n"
"  notifications   the notifications of a customer\n"
"  events          read the event journal\n"
"  stats           services, workers, queues, breakers\n"
"  scale           run N processes of a service (resvd)\n"
"  ping            check that the broker answers\n"
"  call            send any request: call SERVICE METHOD [JSON]\n"
"\n"
"Options:\n"
"  -e, --endpoint ENDPOINT  broker frontend; default RESV_BROKER_FRONTEND,\n"
"                           then broker/frontend in the configuration,\n"
"                           then " RESV_DEFAULT_ENDPOINT "\n"
"  -t, --timeout MS         deadline of the request; default client/timeout\n"
"                           of the configuration (RESV_CLIENT_TIMEOUT), 5000\n"
"  -c, --config FILE        configuration file; default " RESV_CFG_DEFAULT_PATH
"\n"
"                           when it exists\n"
"  -h, --help               this help; 'resv COMMAND --help' for a command\n"
"      --version            print the version\n"
"-e, -t and -c may also come after the command; given twice, the last counts.\n"
"\n"
"Output: one JSON document on stdout. Exit status: 0 done; 1 refused (400,\n"
"402, 403, 404, 409, 429); 2 usage error; 3 unavailable or failed (500,\n"
"501, 503, 504, broker unreachable).\n";

static const char *s_help_resource =
"usage: resv resource add|list|show|update|remove [ARGS]\n"
"\n"
"Manage bookable resources. 'resv resource COMMAND --help' for each:\n"
"  add      register a resource\n"
"  list     list resources\n"
"  show     one resource\n"
"  update   change a resource (its owner)\n"
"  remove   remove a resource (its owner)\n";

static const char *s_help_view =
"usage: resv view rebuild\n"
"\n"
"Manage the view store:\n"
"  rebuild  replay the journal into a fresh view store\n";

static const s_command_t s_commands [] = {
    { "resource", "add", s_none, s_resource_add_opts, s_run_resource_add,
      "usage: resv resource add --name N --owner O [--kind K] [--capacity N]\n"
      "                         [--price CENTS] [--approval auto|manual]\n"
      "                         [--slots a,b,c]\n"
      "\n"
      "Registers a resource and prints it, with its id.\n"
      "  --name N          its name (required)\n"
      "  --owner O         its owner, who alone may change it (required)\n"
      "  --kind K          free text: table, car, room, ...; default none\n"
      "  --capacity N      units per date and slot, 1 to "
      S_TEXT (RESV_CAPACITY_MAX) "; default 1\n"
      "  --price CENTS     price per unit per day, 0 to "
      S_TEXT (RESV_PRICE_MAX) "; default 0\n"
      "  --approval WORD   auto (confirm at once, the default) or manual\n"
      "                    (the owner decides)\n"
      "  --slots a,b,c     slot labels; default all-day\n" },
    { "resource", "list", s_none, s_resource_list_opts, s_run_resource_list,
      "usage: resv resource list [--owner O] [--kind K] [--limit N]\n"
      "                          [--after CURSOR]\n"
      "\n"
      "Lists resources in the order they were added: {\"items\":[...]},\n"
      "with a \"next\" cursor when the page was cut.\n"
      "  --owner O        only those of owner O\n"
      "  --kind K         only those of kind K\n"
      "  --limit N        at most N, 1 to " S_TEXT (RESV_PAGE_MAX)
      " (the default)\n"
      "  --after CURSOR   the page after the one whose \"next\" was CURSOR\n" },
    { "resource", "show", s_id_only, s_none, s_run_resource_show,
      "usage: resv resource show ID\n"
      "\n"
      "Prints resource ID.\n" },
    { "resource", "update", s_id_only, s_resource_update_opts,
      s_run_resource_update,
      "usage: resv resource update ID --owner O [--name N] [--kind K]\n"
      "                            [--capacity N] [--price CENTS]\n"
      "                            [--approval auto|manual] [--slots a,b,c]\n"
      "\n"
      "Changes the given fields of resource ID and prints it. Only its\n"
      "owner may; its capacity cannot drop below what is held.\n"
      "  --owner O   the resource's owner (required)\n"
      "  other options as for 'resv resource add'\n" },
    { "resource", "remove", s_id_only, s_owner_opts, s_run_resource_remove,
      "usage: resv resource remove ID --owner O\n"
      "\n"
      "Removes resource ID. Only its owner may, and only while it has no\n"
      "pending or confirmed reservation.\n"
      "  --owner O   the resource's owner (required)\n" },
    { NULL, "availability", s_none, s_availability_opts, s_run_availability,
      "usage: resv availability --resource ID --date YYYY-MM-DD [--days N]\n"
      "\n"
      "Prints the capacity, held and free units of a resource per date and\n"
      "slot: {\"resource\":ID,\"days\":[{\"date\":D,\"slot\":S,"
      "\"capacity\":N,\"held\":N,\"free\":N}]}.\n"
      "  --resource ID   the resource (required)\n"
      "  --date D        the first date (required)\n"
      "  --days N        how many dates, 1 to " S_TEXT (RESV_DAYS_MAX)
      "; default 1\n" },
    { NULL, "reserve", s_none, s_reserve_opts, s_run_reserve,
      "usage: resv reserve --customer C --resource ID --date YYYY-MM-DD\n"
      "                    [--days N] [--slot S] [--units N] "
      "[--request-id KEY]\n"
      "\n"
      "Reserves units of a resource, holds them and authorises payment;\n"
      "prints the reservation, PENDING. An auto resource's reservation is\n"
      "CONFIRMED a moment later (see resv status); a manual one waits for\n"
      "its owner's approve or decline, or expires.\n"
      "  --customer C       who reserves (required)\n"
      "  --resource ID      what (required)\n"
      "  --date D           first day of the stay (required)\n"
      "  --days N           length of the stay, 1 to " S_TEXT (RESV_DAYS_MAX)
      "; default 1\n"
      "  --slot S           one of the resource's slots; default its first\n"
      "  --units N          how many units, 1 to " S_TEXT (RESV_UNITS_MAX)
      "; default 1\n"
      "  --request-id KEY   idempotency key: repeating a reserve with the\n"
      "                     same KEY returns the same reservation\n" },
    { NULL, "cancel", s_id_only, s_customer_opts, s_run_cancel,
      "usage: resv cancel ID --customer C\n"
      "\n"
      "Cancels reservation ID, pending or confirmed, and prints it,\n"
      "CANCELLED. Only its customer may. Its units are released and its\n"
      "payment voided, or refunded if it was captured, a moment later.\n"
      "  --customer C   the reservation's customer (required)\n" },
    { NULL, "approve", s_id_only, s_owner_opts, s_run_approve,
      "usage: resv approve ID --owner O\n"
      "\n"
      "Approves pending reservation ID. Only the resource's owner may.\n"
      "Prints {\"reservation\":ID,\"decision\":\"approved\"} once the\n"
      "reservation is CONFIRMED (the view shows it a moment later); 409\n"
      "if a cancel or the approval timeout came first.\n"
      "  --owner O   the resource's owner (required)\n" },
    { NULL, "decline", s_id_only, s_decline_opts, s_run_decline,
      "usage: resv decline ID --owner O [--reason TEXT]\n"
      "\n"
      "Declines pending reservation ID. Only the resource's owner may.\n"
      "Prints {\"reservation\":ID,\"decision\":\"declined\"} once the\n"
      "reservation is DECLINED (the view shows it a moment later); 409\n"
      "if a cancel or the approval timeout came first.\n"
      "  --owner O       the resource's owner (required)\n"
      "  --reason TEXT   why, told to the customer\n" },
    { NULL, "status", s_id_only, s_none, s_run_status,
      "usage: resv status ID\n"
      "\n"
      "Prints reservation ID as the view store has it.\n" },
    { NULL, "list", s_none, s_list_opts, s_run_list,
      "usage: resv list [--customer C] [--resource ID] [--status S]\n"
      "                 [--limit N] [--after CURSOR]\n"
      "\n"
      "Lists reservations from the view store: {\"items\":[...]}, with a\n"
      "\"next\" cursor when the page was cut.\n"
      "  --customer C     only those of customer C\n"
      "  --resource ID    only those of resource ID\n"
      "  --status S       only those in status S (PENDING, CONFIRMED, ...)\n"
      "  --limit N        at most N, 1 to " S_TEXT (RESV_PAGE_MAX)
      " (default " S_TEXT (RESV_PAGE_DEFAULT) ")\n"
      "  --after CURSOR   the page after the one whose \"next\" was CURSOR\n" },
    { NULL, "history", s_id_only, s_none, s_run_history,
      "usage: resv history ID\n"
      "\n"
      "Prints the events of reservation ID, in order: {\"items\":[...]}.\n" },
    { "view", "rebuild", s_none, s_none, s_run_view_rebuild,
      "usage: resv view rebuild\n"
      "\n"
      "Empties the view store, replays the journal into it, and prints\n"
      "{\"events\":N,\"reservations\":N}: the journal events the view\n"
      "has applied, and the reservations it holds, when it is done.\n"
      "Rebuilds take turns, also across view processes: one asked while\n"
      "another runs waits for it (within -t) and then prints the counts\n"
      "of the view that one left, with no second replay; if that one\n"
      "failed, or its process died, this one runs. One still waiting at\n"
      "its deadline gets 503 in_progress (exit 3), and the one under way\n"
      "goes on. Until a rebuild ends, status, list and history see the\n"
      "view half built, or wait for the rebuild (with one view process).\n" },
    { NULL, "notifications", s_none, s_notifications_opts,
      s_run_notifications,
      "usage: resv notifications --customer C [--limit N] [--after CURSOR]\n"
      "\n"
      "Prints the notifications of customer C, in the order they were\n"
      "recorded: {\"items\":[{\"id\":..,\"customer\":..,\"reservation\":..,\n"
      "\"kind\":..,\"text\":..,\"at\":..}]}, with a \"next\" cursor when\n"
      "the page was cut. That is the order of the events that caused them,\n"
      "except that a notification recorded late (its service catching up)\n"
      "comes after those recorded before it. Pages read with --after give\n"
      "every notification once, also those recorded meanwhile.\n"
      "  --customer C     the customer (required)\n"
      "  --limit N        at most N, 1 to " S_TEXT (RESV_PAGE_MAX)
      " (the default)\n"
      "  --after CURSOR   the page after the one whose \"next\" was CURSOR\n" },
    { NULL, "events", s_none, s_events_opts, s_run_events,
      "usage: resv events [--from SEQ] [--type PREFIX] [--limit N] "
      "[--follow]\n"
      "\n"
      "Reads the event journal: {\"items\":[...],\"last\":SEQ}, where\n"
      "last is the newest sequence number; when the page was cut,\n"
      "\"next\" says where the next one starts (pass it as --from).\n"
      "  --from SEQ       start at sequence number SEQ (0 or more)\n"
      "  --type PREFIX    only events whose type starts with PREFIX (at\n"
      "                   most " S_TEXT (RESV_TYPE_MAX) " bytes)\n"
      "  --limit N        at most N events, 1 to " S_TEXT (RESV_PAGE_MAX)
      " (default " S_TEXT (RESV_PAGE_DEFAULT) ");\n"
      "                   with --follow, any number\n"
      "  --follow         print events as they are journaled, one per line,\n"
      "                   from --from, else from the next new one; stop\n"
      "                   after --limit events, else run until interrupted;\n"
      "                   a read that fails for a while (429, 500, 503,\n"
      "                   504: no broker, a busy journal) is made again,\n"
      "                   with a line on stderr, and the events go on\n"
      "                   with none skipped\n" },
    { NULL, "stats", s_none, s_none, s_run_stats,
      "usage: resv stats\n"
      "\n"
      "Prints the broker's view of every service and of itself:\n"
      "{\"services\":{\"NAME\":{\"workers\":N,\"idle\":N,\"queued\":N,"
      "\"inflight\":N,\n"
      "\"breaker\":\"closed|open|half-open\",\"served\":N,\"failed\":N}},"
      "\"journal\":N,\n"
      "\"uptime_ms\":N,\"requests\":N,\"held\":N,\"malformed\":N}.\n"
      "  workers, idle   the service's workers, and those holding no request\n"
      "  queued          requests waiting for a worker now\n"
      "  inflight        requests a worker holds now\n"
      "  served          replies its workers gave since the broker started\n"
      "  failed          failures that count toward its circuit breaker since\n"
      "                  then: deadlines passed in a worker's hands (of a\n"
      "                  request whose client asked for at least\n"
      "                  broker/breaker_min_time), workers lost, 500s\n"
      "  journal         the newest event's seq\n"
      "  requests        requests the broker holds now (queued or in flight)\n"
      "  held            of those, requests whose reply waits for their\n"
      "                  deadline, as one that may have been done (at most\n"
      "                  65536; doc/protocol.md, section 4)\n"
      "  malformed       messages from clients or workers refused as malformed\n"
      "                  since it started\n" },
    { NULL, "scale", s_scale_args, s_none, s_run_scale,
      "usage: resv scale SERVICE N\n"
      "\n"
      "Asks the supervisor, resvd, to run N (0 to "
      S_TEXT (RESV_SCALE_MAX) ") processes of\n"
      "SERVICE. Prints {\"service\":..,\"count\":N,\"previous\":N}.\n" },
    { NULL, "ping", s_none, s_none, s_run_ping,
      "usage: resv ping\n"
      "\n"
      "Checks that the broker answers: {\"pong\":true,...}.\n" },
    { NULL, "call", s_call_args, s_none, s_run_call,
      "usage: resv call SERVICE METHOD [JSON]\n"
      "\n"
      "Sends one request to SERVICE's METHOD (may be '') with the JSON\n"
      "document as its body (default {}), and prints the reply.\n" },
};

#define S_COMMANDS (sizeof s_commands / sizeof s_commands [0])


//  --------------------------------------------------------------------------
//  Argument parsing

static bool
s_is_help (const char *arg)
{
    return streq (arg, "-h") || streq (arg, "--help");
}

//  Converts value as arg says and stores it in args. Returns 0, or -1 with
//  the reason in why.
static int
s_store (const s_arg_t *arg, const char *value, json_t *args, char *why,
         size_t why_size)
{
    json_t *json = NULL;
    if (arg->kind == S_STR) {
        json = json_string (value);
        if (!json) {
            snprintf (why, why_size, "%s: not valid UTF-8", arg->name);
            return -1;
        }
    }
    else
    if (arg->kind == S_INT) {
        int64_t number;
        if (resv_parse_int (value, arg->min, arg->max, &number)) {
            //  Where the service has the last word on the largest value
            //  (the help says it), the CLI states only the smallest.
            errno = 0;
            if (arg->max == S_INT_MAX && *value
            &&  strspn (value, "0123456789") == strlen (value)
            &&  (strtoull (value, NULL, 10) > S_INT_MAX || errno == ERANGE))
                snprintf (why, why_size, "%s: '%s' is too large", arg->name,
                          value);
            else
            if (arg->max == S_INT_MAX)
                snprintf (why, why_size, "%s: '%s' is not a whole number of"
                          " at least %" PRId64, arg->name, value, arg->min);
            else
                snprintf (why, why_size, "%s: '%s' is not a whole number from"
                          " %" PRId64 " to %" PRId64, arg->name, value,
                          arg->min, arg->max);
            return -1;
        }
        json = json_integer (number);
    }
    else
    if (arg->kind == S_LIST) {
        json = json_array ();
        const char *item = value;
        while (true) {
            const char *comma = strchr (item, ',');
            size_t len = comma? (size_t) (comma - item): strlen (item);
            json_t *string = len? json_stringn (item, len): NULL;
            if (!string) {
                json_decref (json);
                snprintf (why, why_size, "%s: '%s' is not a comma-separated"
                          " list of non-empty, UTF-8 words", arg->name,
                          value);
                return -1;
            }
            json_array_append_new (json, string);
            if (!comma)
                break;
            item = comma + 1;
        }
    }
    else
    if (arg->kind == S_CHOICE) {
        size_t len = strlen (value);
        const char *choice = arg->choices;
        while (choice) {
            const char *bar = strchr (choice, '|');
            size_t choice_len = bar? (size_t) (bar - choice): strlen (choice);
            if (len && len == choice_len && memcmp (value, choice, len) == 0)
                break;
            choice = bar? bar + 1: NULL;
        }
        if (!choice) {
            snprintf (why, why_size, "%s: '%s' is not one of %s", arg->name,
                      value, arg->choices);
            return -1;
        }
        json = json_string (value);
    }
    else
    if (arg->kind == S_JSON) {
        json_error_t error;
        json = json_loads (value, JSON_DECODE_ANY, &error);
        if (!json) {
            snprintf (why, why_size, "%s: not JSON: %s", arg->name,
                      error.text);
            return -1;
        }
    }
    else
        json = json_true ();
    if (!json || json_object_set_new (args, arg->key, json)) {
        snprintf (why, why_size, "out of memory");
        return -1;
    }
    return 0;
}

//  Takes a global option at argv [*index] (-e, -t, -c and their long
//  forms, with the value next or after '='), advancing *index past it.
//  Returns 1 if it was one, 0 if not, -1 (why set) if it was one gone
//  wrong.
static int
s_global_option (int argc, char *argv [], int *index, s_globals_t *globals,
                 char *why, size_t why_size)
{
    static const struct {
        const char *short_name;
        const char *long_name;
    } names [] = {
        { "-e", "--endpoint" }, { "-t", "--timeout" }, { "-c", "--config" }
    };
    const char *arg = argv [*index];
    const char *value = NULL;
    int which = -1;
    for (int i = 0; i < 3 && which < 0; i++) {
        size_t long_len = strlen (names [i].long_name);
        if (streq (arg, names [i].short_name)
        ||  streq (arg, names [i].long_name))
            which = i;
        else
        if (strncmp (arg, names [i].long_name, long_len) == 0
        &&  arg [long_len] == '=') {
            which = i;
            value = arg + long_len + 1;
        }
    }
    if (which < 0)
        return 0;
    if (!value) {
        if (*index + 1 >= argc) {
            snprintf (why, why_size, "%s needs a value", arg);
            return -1;
        }
        value = argv [++*index];
    }
    (*index)++;
    //  Given twice, the last one counts, so that a wrapper's default (an
    //  alias 'resv -t 10000', a script's array) can be overridden.
    if (which == 0)
        globals->endpoint = value;
    else
    if (which == 2)
        globals->config = value;
    else {
        int64_t timeout;
        if (resv_parse_int (value, 1, S_TIMEOUT_MAX, &timeout)) {
            snprintf (why, why_size, "-t: '%s' is not a whole number of"
                      " milliseconds from 1 to %d", value, S_TIMEOUT_MAX);
            return -1;
        }
        globals->timeout = (int) timeout;
    }
    return 1;
}

//  Takes an option before the command word (or between a group word and
//  its subcommand), where only the global ones may be. Returns 0, or -1
//  with why set when it is not one of them or goes wrong.
static int
s_leading_option (int argc, char *argv [], int *index, s_globals_t *globals,
                  char *why, size_t why_size)
{
    const char *arg = argv [*index];
    int global = s_global_option (argc, argv, index, globals, why, why_size);
    if (global == 0)
        snprintf (why, why_size, "unknown option '%s'", arg);
    return global == 1? 0: -1;
}

//  True if arg looks like a negative number, which is a value, not an
//  option.
static bool
s_is_negative_number (const char *arg)
{
    return arg [0] == '-' && isdigit ((unsigned char) arg [1]);
}

//  Parses the arguments of command into args. Returns 0 when they are
//  good, 1 when help was asked for, -1 with the reason in why.
static int
s_parse_command (const s_command_t *command, int argc, char *argv [],
                 s_globals_t *globals, json_t *args, char *why,
                 size_t why_size)
{
    bool help = false;
    bool failed = false;
    bool options_done = false;
    size_t positional = 0;
    int index = 0;
    //  On the first error, the rest is still read for a --help.
    while (index < argc) {
        const char *arg = argv [index];
        if (!options_done && s_is_help (arg)) {
            help = true;
            index++;
            continue;
        }
        if (!options_done && streq (arg, "--")) {
            options_done = true;
            index++;
            continue;
        }
        if (failed) {
            index++;
            continue;
        }
        if (!options_done && arg [0] == '-' && arg [1]
        &&  !s_is_negative_number (arg)) {
            int global = s_global_option (argc, argv, &index, globals, why,
                                          why_size);
            if (global == 1)
                continue;
            if (global == -1) {
                failed = true;
                continue;
            }
            const char *equals = strchr (arg, '=');
            size_t name_len = equals? (size_t) (equals - arg): strlen (arg);
            const s_arg_t *option = command->options;
            while (option->name && !(strlen (option->name) == name_len
                   && memcmp (option->name, arg, name_len) == 0))
                option++;
            index++;
            if (!option->name) {
                snprintf (why, why_size, "unknown option '%.*s'",
                          (int) name_len, arg);
                failed = true;
                continue;
            }
            if (json_object_get (args, option->key)) {
                snprintf (why, why_size, "%s given twice", option->name);
                failed = true;
                continue;
            }
            const char *value = equals? equals + 1: NULL;
            if (option->kind == S_FLAG) {
                if (value) {
                    snprintf (why, why_size, "%s takes no value",
                              option->name);
                    failed = true;
                    continue;
                }
            }
            else
            if (!value) {
                if (index >= argc) {
                    snprintf (why, why_size, "%s needs a value",
                              option->name);
                    failed = true;
                    continue;
                }
                value = argv [index++];
            }
            if (s_store (option, value, args, why, why_size))
                failed = true;
            continue;
        }
        index++;
        if (!command->positionals [positional].name) {
            snprintf (why, why_size, "unexpected argument '%s'", arg);
            failed = true;
            continue;
        }
        if (s_store (&command->positionals [positional], arg, args, why,
                     why_size))
            failed = true;
        positional++;
    }
    if (help)
        return 1;
    if (failed)
        return -1;
    for (; command->positionals [positional].name; positional++)
        if (command->positionals [positional].required) {
            snprintf (why, why_size, "missing %s",
                      command->positionals [positional].name);
            return -1;
        }
    for (const s_arg_t *option = command->options; option->name; option++)
        if (option->required && !json_object_get (args, option->key)) {
            snprintf (why, why_size, "%s is required", option->name);
            return -1;
        }
    return 0;
}

//  Prints a usage error and the help that goes with it on stderr; returns
//  the usage exit status.
static int
s_usage_error (const char *context, const char *why, const char *help)
{
    fprintf (stderr, "%s: %s\n\n%s", context, why, help);
    return S_EXIT_USAGE;
}

//  The exit status of a reply status: 0 success, 1 refused, 3 failed.
static int
s_exit_status (int status)
{
    if (status >= 200 && status < 300)
        return S_EXIT_OK;
    if (status >= 400 && status < 500)
        return S_EXIT_REFUSED;
    return S_EXIT_FAILED;
}

//  Prints value as one line of compact JSON on stdout, at once. Returns 0,
//  or -1 after saying why on stderr.
static int
s_print_json (json_t *value)
{
    char *text = value? json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY)
                      : NULL;
    if (!text) {
        fprintf (stderr, "resv: cannot print the reply: out of memory\n");
        return -1;
    }
    printf ("%s\n", text);
    free (text);
    if (fflush (stdout) == EOF) {
        fprintf (stderr, "resv: cannot write the reply: %s\n",
                 strerror (errno));
        return -1;
    }
    return 0;
}

//  Prints a reply (taken) and returns the exit status its status calls for.
static int
s_print_reply (int status, json_t *reply)
{
    if (!reply)
        reply = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                "resv: no reply body (out of memory)");
    int rc = s_print_json (reply);
    json_decref (reply);
    return rc? S_EXIT_FAILED: s_exit_status (status);
}

//  True if stdout is a pipe or socket whose reader is gone. A follower
//  that is caught up, or whose reads fail, writes nothing, so no SIGPIPE
//  would tell it: without this, resv events --follow | head -1 ran on
//  until the next event.
static bool
s_reader_gone (void)
{
    struct pollfd out = { STDOUT_FILENO, 0, 0 };
    return poll (&out, 1, 0) == 1 && (out.revents & (POLLERR | POLLHUP));
}

//  Ends a follower whose reader is gone as the next write would: by
//  SIGPIPE, or when that is ignored, as a write that failed.
static int
s_end_for_reader (void)
{
    raise (SIGPIPE);
    fprintf (stderr, "resv: cannot write the reply: %s\n", strerror (EPIPE));
    return S_EXIT_FAILED;
}

//  The failures of a follower's read that may pass (no broker, a busy
//  journal): the read is made again.
static bool
s_follow_retries (int status)
{
    return status == RESV_TOO_MANY || status == RESV_INTERNAL
        || status == RESV_UNAVAILABLE || status == RESV_TIMEOUT;
}

//  One read of a follower: resv_events, made again from the same seq while
//  it fails for a while (s_follow_retries), with a line on stderr when
//  that begins and when it ends. Returns RESV_OK with *reply_p, another
//  status (to print) with *reply_p, or -1 when the reader of stdout went
//  away meanwhile (the caller ends: s_end_for_reader).
static int
s_follow_read (resv_t *client, int64_t from, const char *type, int page,
               json_t **reply_p)
{
    int backoff = 0;                //  ms; 0 until a read fails
    while (true) {
        int status = resv_events (client, from, type, page, reply_p);
        if (status == RESV_OK || !s_follow_retries (status)) {
            if (status == RESV_OK && backoff)
                fprintf (stderr, "resv: events: reading again from seq %"
                         PRId64 "\n", from);
            return status;
        }
        if (!backoff) {
            const char *message = s_str (json_object_get (*reply_p, "error"),
                                         "message");
            fprintf (stderr, "resv: events: reading from seq %" PRId64
                     " failed (%d %s); reading again until it works\n",
                     from, status, message? message: resv_strstatus (status));
        }
        json_decref (*reply_p);
        *reply_p = NULL;
        if (s_reader_gone ())
            return -1;
        backoff = backoff? backoff * 2: S_FOLLOW_POLL;
        if (backoff > S_FOLLOW_BACKOFF)
            backoff = S_FOLLOW_BACKOFF;
        zclock_sleep (backoff);
    }
}

//  events --follow: prints each event of the journal (of --type, from
//  --from, else from the next one journaled) as one line of JSON as it
//  comes, until --limit events were printed or, without --limit, until
//  interrupted. It reads the journal in pages through the events service,
//  waiting S_FOLLOW_POLL ms whenever it is caught up. A read that failed
//  for a while is made again from the same seq (s_follow_read), so
//  nothing is skipped or printed twice; any other failure prints its
//  error and ends the command with that error's exit status.
static int
s_follow_events (resv_t *client, json_t *args)
{
    const char *type = s_str (args, "type");
    int64_t limit = s_int (args, "limit");      //  0: no limit
    int64_t from = s_int (args, "from");
    json_t *reply = NULL;
    int status;
    if (!json_object_get (args, "from")) {
        //  A page of one says which seq is the newest: start after it.
        status = s_follow_read (client, 1, NULL, 1, &reply);
        if (status < 0)
            return s_end_for_reader ();
        if (status != RESV_OK)
            return s_print_reply (status, reply);
        json_t *last = json_object_get (reply, "last");
        if (!json_is_integer (last))
            goto malformed;
        from = json_integer_value (last) + 1;
        json_decref (reply);
    }
    for (int64_t printed = 0; !limit || printed < limit;) {
        int64_t page = limit && limit - printed < S_FOLLOW_PAGE
                     ? limit - printed: S_FOLLOW_PAGE;
        status = s_follow_read (client, from, type, (int) page, &reply);
        if (status < 0)
            return s_end_for_reader ();
        if (status != RESV_OK)
            return s_print_reply (status, reply);
        json_t *items = json_object_get (reply, "items");
        json_t *next = json_object_get (reply, "next");
        if (!json_is_array (items) || !json_is_integer (next)
        ||  json_integer_value (next) < from)
            goto malformed;
        size_t index;
        json_t *event;
        json_array_foreach (items, index, event) {
            if (s_print_json (event)) {
                json_decref (reply);
                return S_EXIT_FAILED;
            }
            printed++;
        }
        if (json_array_size (items) == 0) {
            if (s_reader_gone ()) {
                json_decref (reply);
                return s_end_for_reader ();
            }
            zclock_sleep (S_FOLLOW_POLL);
        }
        from = json_integer_value (next);
        json_decref (reply);
    }
    return S_EXIT_OK;

malformed:
    json_decref (reply);
    return s_print_reply (RESV_INTERNAL, resv_error_new (
        RESV_INTERNAL, RESV_REASON_INTERNAL, "events --follow: the events"
        " service's reply has no usable \"items\", \"next\" or \"last\""));
}

//  Connects, runs command and prints its reply. Returns the exit status.
static int
s_execute (const s_command_t *command, s_globals_t *globals, json_t *args)
{
    //  CZMQ's ZPL parser reports syntax errors with zclock_log, which
    //  writes to stdout whatever the log stream; stdout is for the reply
    //  alone, so while the file is parsed stdout goes to stderr.
    fflush (stdout);
    int saved_stdout = dup (STDOUT_FILENO);
    if (saved_stdout >= 0)
        dup2 (STDERR_FILENO, STDOUT_FILENO);
    resv_cfg_t *cfg = resv_cfg_load (globals->config);
    if (saved_stdout >= 0) {
        fflush (stdout);
        dup2 (saved_stdout, STDOUT_FILENO);
        close (saved_stdout);
    }
    if (!cfg) {
        char why [PATH_MAX + 64];
        snprintf (why, sizeof why, "cannot load the configuration %s",
                  globals->config? globals->config: RESV_CFG_DEFAULT_PATH);
        return s_usage_error ("resv", why, s_help_main);
    }
    const char *endpoint = globals->endpoint
                         ? globals->endpoint
                         : resv_cfg_str (cfg, "broker/frontend",
                                         RESV_DEFAULT_ENDPOINT);
    int timeout = globals->timeout
                ? globals->timeout
                : (int) resv_cfg_int (cfg, "client/timeout",
                                      RESV_DEFAULT_TIMEOUT, 1, S_TIMEOUT_MAX);
    if (resv_cfg_bad (cfg)) {
        resv_cfg_destroy (&cfg);
        return s_usage_error ("resv", "the configuration has a bad value "
                              "(above)", s_help_main);
    }
    resv_t *client = resv_new (endpoint);
    if (!client) {
        char why [512];
        snprintf (why, sizeof why, "cannot use endpoint '%.400s': not a valid"
                  " ZeroMQ endpoint", endpoint);
        resv_cfg_destroy (&cfg);
        return s_usage_error ("resv", why, s_help_main);
    }
    resv_cfg_destroy (&cfg);
    resv_set_timeout (client, timeout);

    int exit_status;
    if (json_is_true (json_object_get (args, "follow")))
        exit_status = s_follow_events (client, args);
    else {
        json_t *reply = NULL;
        int status = command->run (client, args, &reply);
        exit_status = s_print_reply (status, reply);
    }
    resv_destroy (&client);
    return exit_status;
}

int
main (int argc, char *argv [])
{
    //  Before the first socket: keep the default signal handling, so that
    //  Ctrl-C stops a waiting resv at once, and keep logs off stdout.
    zsys_handler_set (NULL);
    zsys_set_logstream (stderr);

    s_globals_t globals = { NULL, NULL, 0 };
    char why [512];
    int index = 1;
    while (index < argc && argv [index][0] == '-') {
        const char *arg = argv [index];
        if (s_is_help (arg)) {
            fputs (s_help_main, stdout);
            return S_EXIT_OK;
        }
        if (streq (arg, "--version")) {
            printf ("resv %s\n", RESV_VERSION);
            return S_EXIT_OK;
        }
        if (s_leading_option (argc, argv, &index, &globals, why, sizeof why))
            return s_usage_error ("resv", why, s_help_main);
    }
    if (index >= argc)
        return s_usage_error ("resv", "no command given", s_help_main);

    const char *word = argv [index++];
    const char *group = NULL;
    const char *group_help = NULL;
    char context [64] = "resv";
    if (streq (word, "resource"))
        group_help = s_help_resource;
    else
    if (streq (word, "view"))
        group_help = s_help_view;
    if (group_help) {
        group = word;
        snprintf (context, sizeof context, "resv %s", group);
        //  Global options may come here too, as before the group and after
        //  the subcommand.
        while (index < argc && argv [index][0] == '-'
        &&     !s_is_help (argv [index]))
            if (s_leading_option (argc, argv, &index, &globals, why,
                                  sizeof why))
                return s_usage_error (context, why, group_help);
        if (index >= argc)
            return s_usage_error (context, "no subcommand given", group_help);
        if (s_is_help (argv [index])) {
            fputs (group_help, stdout);
            return S_EXIT_OK;
        }
        word = argv [index++];
    }
    const s_command_t *command = NULL;
    for (size_t i = 0; i < S_COMMANDS && !command; i++)
        if (streq (s_commands [i].name, word)
        &&  (group? s_commands [i].group && streq (s_commands [i].group, group)
                  : !s_commands [i].group))
            command = &s_commands [i];
    if (!command) {
        snprintf (why, sizeof why, "unknown command '%s'", word);
        return s_usage_error (context, why,
                              group? group_help: s_help_main);
    }
    snprintf (context, sizeof context, "resv%s%s %s", group? " ": "",
              group? group: "", command->name);
    json_t *args = json_object ();
    if (!args) {
        fprintf (stderr, "resv: out of memory\n");
        return S_EXIT_FAILED;
    }
    int rc = s_parse_command (command, argc - index, argv + index, &globals,
                              args, why, sizeof why);
    int exit_status;
    if (rc == 1) {
        fputs (command->help, stdout);
        exit_status = S_EXIT_OK;
    }
    else
    if (rc == -1)
        exit_status = s_usage_error (context, why, command->help);
    else
        exit_status = s_execute (command, &globals, args);
    json_decref (args);
    return exit_status;
}
