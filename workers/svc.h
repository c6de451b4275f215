/*  svc.h: the services a resv worker process can run.

    A service is a handler (worker_handler_fn) and, when it keeps state (a
    store, a cache), a constructor and a destructor for that state. Each
    service lives in its own file, workers/svc_NAME.c; svc.c holds the table
    that names them, which resv-worker looks a service up in and resvd walks
    to know what to supervise and how many of each. Adding a service is one
    file, its declarations below and one line of that table
    (doc/architecture.md, "Adding a service").
*/
#ifndef SVC_H_INCLUDED
#define SVC_H_INCLUDED

#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The reason a decline that gave none carries: approval records it, the
//  reservation service stores it, and notification leaves it out of its
//  notice, which says as much already.
#define SVC_DECLINED_REASON "declined by the owner"

//  Builds a service's state. worker is borrowed (for worker_call) and
//  outlives the state. Returns NULL, after a log line, on failure.
typedef void *(svc_new_fn) (resv_cfg_t *cfg, worker_t *worker);

//  Frees a service's state and nulls the pointer.
typedef void (svc_destroy_fn) (void **state_p);

typedef struct {
    const char *name;           //  Service name, as announced in READY
    worker_handler_fn *handler; //  Answers each request
    svc_new_fn *state_new;      //  NULL for a service without state
    svc_destroy_fn *state_destroy;  //  NULL for a service without state
    int count;                  //  Processes resvd runs when the config
                                //  does not say (workers/NAME/count)
    int credit;                 //  Credit when the config does not say
                                //  (workers/NAME/credit); 0: workers/credit
    int depth;                  //  How deep its synchronous calls to other
                                //  services go: 0 when it makes none, else
                                //  1 + the depth of the deepest it calls.
                                //  resvd stops the deepest first.
} svc_t;

//  Returns the service called name, or NULL if there is none.
const svc_t *
    svc_lookup (const char *name);

//  Returns the index-th service, from 0, or NULL past the last one.
const svc_t *
    svc_at (size_t index);

//  The handlers, one per svc_NAME.c file.

//  echo: the test and benchmark service (svc_echo.c). Methods: echo (the
//  body back, not copied), sleep {"ms":N} (sleeps N ms, keeping the
//  worker's heartbeats going, then {"slept":N}), fail (500), exit
//  (the process exits at once, reply never sent: a crash with a request in
//  hand).
int
    svc_echo (void *state, const char *method, zframe_t **body_p,
              int64_t deadline, zframe_t **reply_p);

//  echo's state is its worker (borrowed), so that sleep keeps heartbeats
//  going; nothing to destroy.
void *
    svc_echo_new (resv_cfg_t *cfg, worker_t *worker);

//  availability (svc_availability.c): resources and the capacity held for
//  reservations; no overbooking is enforced by the store. Methods:
//  resource.add {name, owner, kind?, capacity?=1, price?=0,
//  approval?="auto", slots?=["all-day"], request_id?} -> 201 resource;
//  resource.list {owner?, kind?, limit?, after?} -> {"items":[...],"next"?};
//  resource.show {id}; resource.update {id, owner, name?, kind?,
//  capacity?, price?, approval?, slots?}; resource.remove {id, owner};
//  availability {resource, date, days?=1} -> {"resource":ID,"days":[{date,
//  slot, capacity, held, free}]}; hold {reservation, resource, date,
//  days?=1, slot?, units?=1} -> {"resource":{...},"slot":S} (409
//  no_capacity, nothing held); release {reservation} ->
//  {"reservation":ID,"released":N}. Ids, owners and request ids are tokens
//  of 1 to 64 letters, digits or ._:@+-. Emits resource.*; consumes
//  reservation.declined|expired|cancelled (releases the holds for good).
//  The worker is not used and may be NULL.
int
    svc_availability (void *state, const char *method, zframe_t **body_p,
                      int64_t deadline, zframe_t **reply_p);
void *
    svc_availability_new (resv_cfg_t *cfg, worker_t *worker);
void
    svc_availability_destroy (void **state_p);

//  payment (svc_payment.c): authorises a reservation's payment and moves
//  it with the reservation's events. Methods: authorize {reservation,
//  customer, amount} -> {"payment":{id, status, amount}} (402
//  payment_declined, 503 payment_unavailable), void {reservation}; both
//  idempotent by reservation. Consumes reservation.confirmed (capture),
//  declined|expired (void), cancelled (refund if captured, else void), and
//  emits payment.authorized|captured|voided|refunded. Config:
//  payment/max_amount, payment/latency, payment/failure_rate (the
//  simulator's). The worker is not used and may be NULL.
//
//  A provider is what moves the money. Each call names the reservation,
//  which the provider uses as its idempotency key (a call may come twice,
//  after a crash or from two processes), and returns RESV_OK,
//  RESV_PAYMENT_DECLINED (authorize only: refused for good) or
//  RESV_UNAVAILABLE (try again later), writing why into message (size
//  bytes) when it refuses. Calls come from two threads at once (requests,
//  and the events actor that captures, voids and refunds), so a provider
//  must be thread-safe.
typedef int (svc_payment_call_fn) (void *self, const char *reservation,
                                   const char *customer, int64_t amount,
                                   char *message, size_t size);
typedef struct {
    void *self;                     //  The provider's state, borrowed
    svc_payment_call_fn *authorize; //  Holds amount on the customer
    svc_payment_call_fn *capture;   //  Takes what was authorised
    svc_payment_call_fn *void_;     //  Drops an authorisation ("void" is
                                    //  a C keyword)
    svc_payment_call_fn *refund;    //  Gives back what was captured
} svc_payment_provider_t;

int
    svc_payment (void *state, const char *method, zframe_t **body_p,
                 int64_t deadline, zframe_t **reply_p);
//  With the built-in simulator as provider.
void *
    svc_payment_new (resv_cfg_t *cfg, worker_t *worker);
//  With provider (copied; provider->self is borrowed and must outlive the
//  state), or the simulator when provider is NULL.
void *
    svc_payment_new_with (resv_cfg_t *cfg,
                          const svc_payment_provider_t *provider);
void
    svc_payment_destroy (void **state_p);

//  reservation (svc_reservation.c): the reserve saga and the status
//  machine. Methods: reserve {customer, resource, date, days?=1, slot?,
//  units?=1, request_id?} -> 201 reservation (availability hold, payment
//  authorize, then the reservation and reservation.requested in one
//  transaction; undone on failure: 400, 402, 404, 409, 503, 504); cancel
//  {id, customer}; expire {id}; get {id}. Consumes approval.approved|
//  declined (the status moves) and payment.captured|voided|refunded (the
//  reservation's payment status), by type. Config: reservation/sweep (ms
//  between sweeps of abandoned reserves, 5000), reservation/abandon (age
//  of an abandoned reserve, ms; broker/max_timeout + 10000). The state
//  needs the worker (worker_call).
int
    svc_reservation (void *state, const char *method, zframe_t **body_p,
                     int64_t deadline, zframe_t **reply_p);
void *
    svc_reservation_new (resv_cfg_t *cfg, worker_t *worker);
void
    svc_reservation_destroy (void **state_p);

//  How reserve reaches availability and payment: worker_call's shape, with
//  self an argument of the caller's choosing. request is borrowed; *reply_p
//  gets what worker_call gives (caller owns), on failure too.
typedef int (svc_call_fn) (void *self, const char *service,
                           const char *method, json_t *request,
                           int timeout_ms, json_t **reply_p);

//  Replaces the downstream caller of a reservation state (by default
//  worker_call on the worker it was made with) by call with arg, borrowed,
//  which must outlive the state; call NULL restores worker_call, on arg as
//  a worker_t *. tests/saga_baseline.c uses it to run the saga's
//  transactions with no messaging, calling the other services' handlers
//  directly.
void
    svc_reservation_set_caller (void *state, svc_call_fn *call, void *arg);

//  approval (svc_approval.c): the owner's decision. Consumes
//  reservation.requested (auto: approval.approved at once; manual: waits,
//  with a deadline of approval/timeout ms) and reservation.cancelled
//  (closes what is no longer pending), by type. Methods: approve {id,
//  owner, reason?}, decline {id, owner, reason?} ->
//  {"reservation":ID,"decision":D}.
//  Every approval/tick ms (1000) it expires what passed its deadline
//  through reservation expire.
int
    svc_approval (void *state, const char *method, zframe_t **body_p,
                  int64_t deadline, zframe_t **reply_p);
void *
    svc_approval_new (resv_cfg_t *cfg, worker_t *worker);
void
    svc_approval_destroy (void **state_p);

//  notification (svc_notification.c): consumes reservation.confirmed|
//  declined|expired|cancelled and payment.refunded, records one
//  notification per event (exactly once) and emits notification.sent.
//  Method: list {customer, limit?=1000, after?} -> {"items":[{id, customer,
//  reservation, kind, text, at}],"next"?}, in journal order.
int
    svc_notification (void *state, const char *method, zframe_t **body_p,
                      int64_t deadline, zframe_t **reply_p);
void *
    svc_notification_new (resv_cfg_t *cfg, worker_t *worker);
void
    svc_notification_destroy (void **state_p);

//  view (svc_view.c): the read store, fed by reservation.* and payment.*
//  events. Methods: status {id}; list {customer?, resource?, status?,
//  limit?=100, after?} -> {"items":[...],"next"?}; history {id};
//  rebuild {} -> {"events":N,"reservations":N}.
int
    svc_view (void *state, const char *method, zframe_t **body_p,
              int64_t deadline, zframe_t **reply_p);
void *
    svc_view_new (resv_cfg_t *cfg, worker_t *worker);
void
    svc_view_destroy (void **state_p);

#ifdef __cplusplus
}
#endif

#endif
