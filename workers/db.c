/*  db.c: resv's SQLite connections (see db.h).  */

#include "db.h"
#include <pthread.h>

static pthread_once_t s_setup_once = PTHREAD_ONCE_INIT;

//  Process-wide settings; sqlite3_config works only before SQLite's first
//  use, and refuses (harmlessly) after it.
static void
s_setup (void)
{
    sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
}

int
db_open (const char *path, int flags, sqlite3 **db_p)
{
    pthread_once (&s_setup_once, s_setup);
    return sqlite3_open_v2 (path, db_p, flags | SQLITE_OPEN_NOMUTEX, NULL);
}
