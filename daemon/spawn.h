/* Running programs for config mode (spawn.c). */
#ifndef NOISETUN_SPAWN_H
#define NOISETUN_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether prog is an executable in PATH (or the default path without one). */
bool in_path(const char *prog);
/* argv (execvp) with stdin from in_fd, stdout and stderr to out_fd (-1: ours); its pid or -1. */
pid_t spawn_program(char *const argv[], int in_fd, int out_fd);
pid_t spawn_program_env(char *const argv[], int in_fd, int out_fd, char *const env[], bool own_group);
/* Wait for pid: its exit status, 128 + the signal that ended it, or -1. */
int wait_status(pid_t pid);
/* Run argv with data on its stdin (NULL: inherit ours); its exit status, or -1. */
int run_program(char *const argv[], const char *data);

#endif
