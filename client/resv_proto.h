/*  resv_proto.h: every command and status string of the resv wire protocol.

    This header is the single home of the protocol's constants. The
    protocol itself is described in doc/protocol.md; keep the two in step.
    Frames are sent as CZMQ zframes; all text frames are ASCII without a
    terminating NUL.
*/
#ifndef RESV_PROTO_H_INCLUDED
#define RESV_PROTO_H_INCLUDED

#include <stdint.h>

//  First frame of every message, naming the sub-protocol and its version.
//  Clients (DEALER) talk RESVC1 to the broker frontend (ROUTER); workers
//  (DEALER) talk RESVW1 to the broker backend (ROUTER).
#define RESV_PROTO_CLIENT       "RESVC1"
#define RESV_PROTO_WORKER       "RESVW1"

//  The broker's backend and fan-out endpoints when the configuration names
//  none (spec section 7; the frontend's is RESV_DEFAULT_ENDPOINT, resv.h).
#define RESV_DEFAULT_BACKEND    "tcp://127.0.0.1:5571"
#define RESV_DEFAULT_EVENTS     "tcp://127.0.0.1:5572"

//  Client <-> broker commands.
//  REQ:  header, "REQ", request-id, service, method, timeout-ms[@sent], body
//        [, internal-key]  (workers only, for the methods listed below)
//  RTRY: the same frames as REQ: a REQ sent again, unanswered (protocol
//        section 2); a broker that does not know it takes it as a request
//        an earlier send of which may have been done
//  REP:  header, "REP", request-id, status, body
#define RESV_CMD_REQUEST        "REQ"
#define RESV_CMD_RETRY          "RTRY"
#define RESV_CMD_REPLY          "REP"

//  Worker <-> broker commands.
//  READY:     header, "READY", service, credit        (worker -> broker)
//             [, internal-key]  (required by a broker that has one)
//  REQ:       header, "REQ", ticket, method, timeout-ms@sent, body
//             (broker -> worker; sent: the broker's clock, ms)
//  REP:       header, "REP", ticket, status, body     (worker -> broker)
//  HB:        header, "HB"                            (both ways)
//  BYE:       header, "BYE"                           (both ways)
#define RESV_CMD_READY          "READY"
#define RESV_CMD_HEARTBEAT      "HB"
#define RESV_CMD_DISCONNECT     "BYE"

//  Frame counts of each well-formed message (after the ROUTER identity).
#define RESV_CLIENT_REQ_FRAMES  7
#define RESV_CLIENT_REP_FRAMES  5
#define RESV_WORKER_READY_FRAMES 4
#define RESV_WORKER_REQ_FRAMES  6
#define RESV_WORKER_REP_FRAMES  5
#define RESV_WORKER_CTL_FRAMES  2

//  Size limits of the short text frames. A request id or ticket longer than
//  this is malformed; services and methods are short lowercase words.
#define RESV_ID_MAX             64
//  Longest event type, and so the longest type prefix a journal read takes.
#define RESV_TYPE_MAX           64
//  The largest request body libresv sends, in bytes: it refuses a larger
//  one itself, 400 too_large. The broker reads frames up to the larger of
//  this and four times broker/max_message, so that every request libresv
//  sends is read and answered (400 too_large when over max_message);
//  ZeroMQ drops a peer whose frame is larger still (ZMQ_MAXMSGSIZE), so
//  that no one can make the broker buffer without bound.
#define RESV_FRAME_MAX          (16 * 1024 * 1024)
//  broker/max_message when the configuration does not say.
#define RESV_MESSAGE_MAX_DEFAULT    1048576

//  The largest frame the broker reads, given broker/max_message: a worker
//  replies nothing larger (the broker would drop its connection unread).
static inline int64_t
resv_frame_limit (int64_t max_message)
{
    return max_message * 4 > RESV_FRAME_MAX? max_message * 4: RESV_FRAME_MAX;
}

//  Requests one batch request carries at most (RESV_BATCH_PREFIX); a
//  larger batch is refused, 400, so that its reply stays within what the
//  broker reads.
#define RESV_BATCH_MAX          64
#define RESV_NAME_MAX           32
#define RESV_TICKET_MAX         (2 * 255 + 1 + RESV_ID_MAX)

//  Status codes, HTTP-like, sent as ASCII decimal in the status frame.
#define RESV_OK                 200
#define RESV_CREATED            201
#define RESV_BAD_REQUEST        400
#define RESV_PAYMENT_DECLINED   402
#define RESV_FORBIDDEN          403
#define RESV_NOT_FOUND          404
#define RESV_CONFLICT           409
#define RESV_TOO_MANY           429
#define RESV_INTERNAL           500
#define RESV_NOT_IMPLEMENTED    501
#define RESV_UNAVAILABLE        503
#define RESV_TIMEOUT            504

//  Whether status is one resv answers with: a success (2xx), a refusal
//  (4xx) or a failure (5xx). Any other is a peer's fault wherever it is
//  read: the broker, libresv and a worker's runtime take it for 500.
#define RESV_STATUS_VALID(status) \
    ((status) >= 200 && (status) <= 599 && (status) / 100 != 3)

//  Reason words carried in error bodies:
//  {"error":{"code":N,"reason":"word","message":"text"}}
#define RESV_REASON_BAD_REQUEST     "bad_request"
#define RESV_REASON_MALFORMED       "malformed"
#define RESV_REASON_TOO_LARGE       "too_large"
#define RESV_REASON_UNKNOWN_METHOD  "unknown_method"
#define RESV_REASON_FORBIDDEN       "forbidden"
#define RESV_REASON_NOT_FOUND       "not_found"
#define RESV_REASON_CONFLICT        "conflict"
#define RESV_REASON_QUEUE_FULL      "queue_full"
#define RESV_REASON_INTERNAL        "internal"
#define RESV_REASON_NOT_IMPLEMENTED "not_implemented"
#define RESV_REASON_NO_WORKER       "no_worker"
#define RESV_REASON_WORKER_LOST     "worker_lost"
#define RESV_REASON_CIRCUIT_OPEN    "circuit_open"
#define RESV_REASON_DEADLINE        "deadline_exceeded"
//  The deadline passed, or was too near, before the request was begun
//  (504): it waited in the broker's queue with every worker of its
//  service busy, or in its worker behind others. Nothing was done, and
//  it may be retried as it is. Never said of a request whose first worker
//  was lost (the broker says deadline_exceeded): that one may have.
#define RESV_REASON_NOT_STARTED     "not_started"
#define RESV_REASON_UNREACHABLE     "broker_unreachable"
#define RESV_REASON_STOPPING        "stopping"
#define RESV_REASON_NO_CAPACITY     "no_capacity"
#define RESV_REASON_PAYMENT_DECLINED    "payment_declined"
//  The payment provider failed (503): the reserve may be retried.
#define RESV_REASON_PAYMENT_UNAVAILABLE "payment_unavailable"
//  Another attempt of the same reserve (its retry, or the same request
//  sent twice at once) holds the reservation id, undoing it or past its
//  deadline (503): the reserve may be retried in a moment. Also a view
//  rebuild that waited until its deadline for another one still under
//  way (503).
#define RESV_REASON_IN_PROGRESS     "in_progress"
//  A worker's asynchronous call that never left it (500): the group
//  commit before it failed, or the worker closed first. Only the caller's
//  completion sees it; nothing was done on the callee's side.
#define RESV_REASON_NOT_SENT        "not_sent"

//  Methods only workers may call, as "service/method": they change state
//  on another service's behalf (a hold, a compensation, an expiry) or
//  append to the journal. A request for one must carry the deployment's
//  internal key (config broker/internal_key, which resvd makes up for
//  the processes it starts) as an eighth frame; the broker refuses it
//  403 otherwise. A broker with no key configured lets them through, and
//  says so once when it starts.
#define RESV_INTERNAL_METHODS \
    "availability/hold", "availability/release", "payment/authorize", \
    "payment/void", "reservation/expire", "reservation/decide", \
    "events/publish", "echo/exit"
#define RESV_REASON_INTERNAL_ONLY   "internal_only"

//  A method "batch.METHOD" carries several requests for METHOD of one
//  service in one message, body {"batch":[BODY,...]}; the worker runs
//  each as if it had come alone and answers 200
//  {"batch":[{"status":N,"body":REPLY|null},...]} in the same order. The
//  broker routes it as one request, and asks the internal key for it
//  when METHOD is internal. Workers send their asynchronous calls of one
//  group commit this way (worker_call_async).
#define RESV_BATCH_PREFIX           "batch."

//  Services the broker answers itself, without a worker.
#define RESV_SERVICE_PING       "ping"
#define RESV_SERVICE_STATS      "stats"
//  The broker also answers the journal's service, RESV_SERVICE_EVENTS
//  (below): "publish" {"events":[...]} -> {"seqs":[...]}, and "read".
#define RESV_METHOD_PUBLISH     "publish"

//  Service the supervisor registers as a worker, and its method.
#define RESV_SERVICE_RESVD      "resvd"
#define RESV_METHOD_SCALE       "scale"
//  Most processes of one service that scale asks resvd to run.
#define RESV_SCALE_MAX          64

//  Limits of the domain, which the services enforce (400 beyond them) and
//  libresv's callers may check first. Capacity, units and price are
//  bounded so that an amount, price x units x days, stays far inside 64
//  bits (1e8 x 1e6 x 366 < 4e16).
#define RESV_CAPACITY_MAX       1000000     //  Units per date and slot
#define RESV_UNITS_MAX          RESV_CAPACITY_MAX   //  Units of one reserve
#define RESV_PRICE_MAX          100000000   //  Cents per unit per day
#define RESV_DAYS_MAX           366         //  Days of one stay or query
#define RESV_SLOTS_MAX          32          //  Slot labels of a resource
#define RESV_SLOT_MAX           64          //  Bytes of one slot label

//  Most items one page of a collection holds (list, resource list,
//  notifications, events; a larger limit is a 400), and how many a page
//  of list or events holds when the caller gives no limit (resource list
//  and notifications give a whole page). A page that was cut says where
//  the next one starts ("next"). A thousand items stay far under
//  broker/max_message.
#define RESV_PAGE_MAX           1000
#define RESV_PAGE_DEFAULT       100

//  Service methods: the services of the resv commands and the methods
//  libresv's per-command helpers call (resv.h), with their JSON bodies.
//  "?" marks an optional key.
#define RESV_SERVICE_AVAILABILITY   "availability"
#define RESV_SERVICE_RESERVATION    "reservation"
#define RESV_SERVICE_APPROVAL       "approval"
#define RESV_SERVICE_VIEW           "view"
#define RESV_SERVICE_NOTIFICATION   "notification"
#define RESV_SERVICE_EVENTS         "events"
#define RESV_SERVICE_PAYMENT        "payment"
//  Called by the reservation service (doc/saga.md), not by libresv.
//  availability: {reservation, resource, date, days?, slot?, units?}
#define RESV_METHOD_HOLD            "hold"
//  availability: {reservation}
#define RESV_METHOD_RELEASE         "release"
//  payment: {reservation, customer, amount}
#define RESV_METHOD_AUTHORIZE       "authorize"
//  payment: {reservation}
#define RESV_METHOD_VOID            "void"
//  availability: {name, owner, kind?, capacity?, price?, approval?, slots?,
//  request_id?}
#define RESV_METHOD_RESOURCE_ADD    "resource.add"
//  availability: {owner?, kind?, limit?, after?}
#define RESV_METHOD_RESOURCE_LIST   "resource.list"
//  availability: {id}
#define RESV_METHOD_RESOURCE_SHOW   "resource.show"
//  availability: {id, owner, name?, kind?, capacity?, price?, approval?,
//  slots?}
#define RESV_METHOD_RESOURCE_UPDATE "resource.update"
//  availability: {id, owner}
#define RESV_METHOD_RESOURCE_REMOVE "resource.remove"
//  availability: {resource, date, days?}
#define RESV_METHOD_AVAILABILITY    "availability"
//  reservation: {customer, resource, date, days?, slot?, units?, request_id?}
#define RESV_METHOD_RESERVE         "reserve"
//  reservation: {id, customer}
#define RESV_METHOD_CANCEL          "cancel"
//  reservation: {id}, PENDING to EXPIRED (called by approval's timer)
#define RESV_METHOD_EXPIRE          "expire"
//  reservation: {id, decision ("approved" | "declined"), reason?},
//  PENDING to CONFIRMED or DECLINED (called by approval once the owner's
//  decision is journaled, so that its reply says whether it won)
#define RESV_METHOD_DECIDE          "decide"
//  reservation: {id}, the command side's copy (for checks)
#define RESV_METHOD_GET             "get"
//  approval: {id, owner}
#define RESV_METHOD_APPROVE         "approve"
//  approval: {id, owner, reason?}
#define RESV_METHOD_DECLINE         "decline"
//  view: {id}; resvd: {}, its processes
#define RESV_METHOD_STATUS          "status"
//  view: {customer?, resource?, status?, limit?, after?};
//  notification: {customer, limit?, after?}
#define RESV_METHOD_LIST            "list"
//  view: {id}
#define RESV_METHOD_HISTORY         "history"
//  view: {}
#define RESV_METHOD_REBUILD         "rebuild"
//  events: {from?, type?, limit?}
#define RESV_METHOD_READ            "read"

#endif
