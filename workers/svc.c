/*  svc.c: the table of services a resv worker can run (see svc.h).  */

#include "svc.h"

//  One line per service, with the number of processes resvd runs by
//  default (as in config/resv.cfg). The domain services answer 501 until
//  their own svc_NAME.c replaces svc_not_implemented here.
static const svc_t s_services [] = {
    { "availability", svc_availability, svc_availability_new,
                      svc_availability_destroy, 1 },
    { "reservation",  svc_reservation, svc_reservation_new,
                      svc_reservation_destroy, 1 },
    { "payment",      svc_payment, svc_payment_new,
                      svc_payment_destroy, 1 },
    { "approval",     svc_approval, svc_approval_new,
                      svc_approval_destroy, 1 },
    { "notification", svc_notification, svc_notification_new,
                      svc_notification_destroy, 1 },
    { "view",         svc_view, svc_view_new, svc_view_destroy, 1 },
    { "echo",         svc_echo, svc_echo_new, NULL, 1 },
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

int
svc_not_implemented (void *state, const char *method, zframe_t **body_p,
                     int64_t deadline, zframe_t **reply_p)
{
    (void) state, (void) body_p, (void) deadline;
    *reply_p = worker_error (RESV_NOT_IMPLEMENTED, RESV_REASON_NOT_IMPLEMENTED,
                             "method '%s' is not implemented yet", method);
    return RESV_NOT_IMPLEMENTED;
}
