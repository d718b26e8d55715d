/* The report of a down to `noisetun down` (report.c). */
#ifndef NOISETUN_REPORT_H
#define NOISETUN_REPORT_H

/* Connect to root's listener next to the control socket uapi_path (IFACE.down), if one
 * listens, and mirror the log there; without one, nothing. */
void report_open(const char *uapi_path, const char *ifname);
void report_close(void);
/* The listener's fd, or -1. */
int report_fd(void);

#endif
