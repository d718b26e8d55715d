/* Config mode's hooks: PreUp, PostUp, PreDown, PostDown (cfghooks.c). */
#ifndef NOISETUN_CFGHOOKS_H
#define NOISETUN_CFGHOOKS_H

#include <stdbool.h>

/* PostUp runs once the control socket is served (a hook may run `wg set %i`): by the
 * monitor, waiting (0, or -1 with *what), or by a daemon without one from its own loop,
 * one hook at a time: config_hooks_start() gives the running hook's pidfd (1), or says
 * all are done (0) or one failed (-1; PostUp stops there, and config_hooks_error() says
 * which); when the pidfd is readable, config_hooks_next() goes on the same way.
 * HOOK_PRE_DOWN that way runs PreDown at most once, as config_pre_down() does. */
enum hook_phase { HOOK_PRE_UP, HOOK_POST_UP, HOOK_PRE_DOWN, HOOK_POST_DOWN };
int config_post_up(const char **what);
int config_hooks_start(enum hook_phase phase, int *pidfd);
int config_hooks_next(int *pidfd);
const char *config_hooks_error(void);
void config_hooks_abort(void);
/* The hooks of phase one after the other, waiting for each; stop_on_error: at the first
 * failure (wg-quick's `set -e`). 0, or -1 with config_hooks_error(). */
int config_hooks_run(enum hook_phase phase, bool stop_on_error);
char *config_hook_expand(const char *hook);             /* %i expanded; malloc'd or NULL */
const char *config_hook_shell(void);

#endif
