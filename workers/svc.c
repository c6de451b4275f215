/*  svc.c: the table of services a resv worker can run (see svc.h).  */

#include "svc.h"

//  One line per service, with the number of processes resvd runs by
//  default and, where it differs from workers/credit, the service's
//  credit (both as in config/resv.cfg). A reserve waits on availability
//  and payment without blocking its worker, so one reservation worker
//  carries as many at once as its credit lets it.
//
//  Last comes the depth of the service's synchronous calls: reservation
//  calls availability and payment (reserve, and the sweep's undo), and
//  approval calls reservation (expire). resvd stops approval, then
//  reservation, then the rest, so that no call in flight finds its
//  callee gone.
static const svc_t s_services [] = {
    { "availability", svc_availability, svc_availability_new,
                      svc_availability_destroy, 1, 0, 0 },
    { "reservation",  svc_reservation, svc_reservation_new,
                      svc_reservation_destroy, 1, 64, 1 },
    { "payment",      svc_payment, svc_payment_new,
                      svc_payment_destroy, 1, 0, 0 },
    { "approval",     svc_approval, svc_approval_new,
                      svc_approval_destroy, 1, 0, 2 },
    { "notification", svc_notification, svc_notification_new,
                      svc_notification_destroy, 1, 0, 0 },
    { "view",         svc_view, svc_view_new, svc_view_destroy, 1, 0, 0 },
    { "echo",         svc_echo, svc_echo_new, NULL, 1, 0, 0 },
};

const svc_t *
svc_lookup (const char *name)
{
    for (size_t i = 0; name && i < sizeof s_services / sizeof *s_services; i++)
        if (streq (s_services [i].name, name))
            return &s_services [i];
    return NULL;
}

const svc_t *
svc_at (size_t index)
{
    return index < sizeof s_services / sizeof *s_services?
           &s_services [index]: NULL;
}
