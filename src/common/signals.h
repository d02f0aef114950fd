/* signals: a program's signals as flags. A caught signal stores its number
 * in the flag given for it; it is blocked except while waiting in
 * net_ppoll with the waitmask, so it can never slip in between a check of
 * its flag and a wait. SIGPIPE is ignored (write errors come as EPIPE). */
#ifndef SIGNALS_H
#define SIGNALS_H

#include <signal.h>

/* Start: SIGPIPE ignored, *waitmask the mask to wait with (nothing caught
 * yet). */
void signals_init(sigset_t *waitmask);
/* Catch sig into *flag (kept: it must live as long as the process). */
void signals_catch(int sig, volatile sig_atomic_t *flag, sigset_t *waitmask);

#endif
