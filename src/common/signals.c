#include "signals.h"

#include <string.h>

/* The flag of each caught signal: the only state a handler touches. */
static volatile sig_atomic_t *flags[NSIG];

static void on_signal(int sig)
{
	if (sig > 0 && sig < NSIG && flags[sig] != NULL) {
		*flags[sig] = sig;
	}
}

void signals_init(sigset_t *waitmask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigprocmask(SIG_BLOCK, NULL, waitmask);
}

void signals_catch(int sig, volatile sig_atomic_t *flag, sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	flags[sig] = flag;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, sig);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigdelset(waitmask, sig);
}
